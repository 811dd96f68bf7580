"""Every registered layer rule is complete and has a fixture model that prunes through it.

Each fixture is written once for either Keras (K = keras or tf_keras).  Per fixture: build it in
Keras 3 with random weights, carry it to tf-keras (equal outputs), prune it (equivalence with the
zeroed original, a real difference from the unpruned one), carry the pruned model back to
Keras 3 (equal outputs).  The registry test then fails for any rule in ``RULES`` that no fixture
contains, or (for rules that pass channels on) that no fixture prunes through.
"""
from edgeprune.keras import keras as tfk
from edgeprune.pruning.rules import CONTRACT, RULES, Rule
from helpers.rule_fixtures import FIXTURES


def _classes(name) -> set[str]:
    """Layer classes of a fixture (wrapped layers included), built in tf-keras (cheap, no weights run)."""
    model = FIXTURES[name](tfk)
    return {type(l).__name__ for l in model.layers} | {
        type(l.forward_layer).__name__ for l in model.layers if hasattr(l, "forward_layer")} | {"InputLayer"}


def test_every_rule_fulfils_the_contract():
    for name, rule in RULES.items():
        missing = [m for m in CONTRACT if getattr(type(rule), m) is getattr(Rule, m)]
        assert not missing, f"rule for {name} ({type(rule).__name__}) lacks {missing}"


def test_every_rule_has_a_fixture_model():
    contained = set().union(*(_classes(name) for name in FIXTURES))
    assert not set(RULES) - contained, f"rules without a fixture model: {sorted(set(RULES) - contained)}"
