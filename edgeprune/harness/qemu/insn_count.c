/*
 * QEMU TCG plugin: what one inference executes, between two marker syscalls.
 *
 * The guest opens a region with sched_get_priority_max(4242) and closes it with
 * sched_get_priority_max(4243); both fail harmlessly with EINVAL.  The syscall number differs
 * per guest ABI (aarch64: 125, 32-bit arm EABI: 159), so it is a plugin argument.
 *
 * Three things are measured, all only for the guest thread (vcpu) that opened the region, which
 * keeps them deterministic even if worker threads spin:
 *  1. executed instructions, one line per closed region, in order:
 *         region <index> <opener-thread instructions> <all-thread instructions>
 *  2. the instruction mix of each region: each executed instruction is keyed by its disassembly
 *     with register numbers and immediates removed ("fmla v.4s, v.4s, v.s[2]", "ldr q, [x, #]").
 *     A key is defined once, before its first use:   keydef <id> <text>
 *     and each closed region then lists its keys:     mix <index> <n>   and n lines   k <id> <count>
 *     The host side turns keys into execution-pipe use with a core's scheduling model.
 *  3. optionally (cache=...), the region's data accesses through a set-associative LRU cache
 *     hierarchy with the board's sizes; the simulated caches stay warm from one region to the next:
 *         cache <index> <accesses> <misses level 1> [<misses level 2> ...]
 *
 * Arguments: out=<file> (required), sysno=<n> (default 125), open=<n> (4242), close=<n> (4243),
 * cache=<bytes>:<ways>[/<bytes>:<ways>...] (levels from L1D outwards, 64-byte lines).
 * Built against qemu-plugin.h of the QEMU that loads it (API of QEMU 7.2: no per-vcpu scoreboard,
 * so a per-TB callback adds into a per-vcpu slot instead of an inline add into one shared counter).
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 1024 /* guest threads alive at once; later indices are not counted */
#define MAX_KEYS 8192  /* distinct instruction shapes; later ones share the last slot "other" */
#define KEY_LEN 96
#define MAX_LEVELS 4
#define LINE_SHIFT 6

static uint64_t counts[MAX_VCPUS];
static int64_t marker_sysno = 125;
static uint64_t open_magic = 4242;
static uint64_t close_magic = 4243;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static int open_vcpu = -1;          /* read without the lock by the exec callbacks */
static uint64_t open_thread_count;
static uint64_t open_all_count;
static unsigned long n_regions;

/* --- instruction mix --------------------------------------------------------------------------- */

static char key_text[MAX_KEYS][KEY_LEN];
static uint64_t key_counts[MAX_KEYS];  /* in the open region */
static unsigned n_keys, n_keys_defined;

typedef struct {
    uint32_t n_insns;
    uint32_t n_distinct;
    uint32_t ids[];      /* n_distinct key ids, then n_distinct multiplicities */
} TbInfo;

/* "fmla v12.4s, v3.4s, v0.s[2]" -> "fmla v.4s, v.4s, v.s[2]"; "ldr q1, [x2, #16]" -> "ldr q, [x, #]" */
static void shape_of(const char *disas, char *key)
{
    size_t n = 0;
    const char *s = disas;
    while (*s && isspace((unsigned char)*s)) {
        s++;
    }
    const char *start = s;
    for (; *s && n < KEY_LEN - 1; s++) {
        char c = *s;
        if (c == '\t') {
            c = ' ';
        }
        if (c == '#') { /* immediate: keep the sign of it only */
            key[n++] = '#';
            while (s[1] && s[1] != ',' && s[1] != ']' && s[1] != '}') {
                s++;
            }
            continue;
        }
        if (c == '0' && s[1] == 'x') { /* address or hex constant */
            key[n++] = '@';
            s++;
            while (isxdigit((unsigned char)s[1])) {
                s++;
            }
            continue;
        }
        if (isdigit((unsigned char)c) && s > start && isalpha((unsigned char)s[-1]) &&
            (s - 1 == start || !(isalnum((unsigned char)s[-2]) || s[-2] == '.'))) {
            while (isdigit((unsigned char)s[1])) { /* register number */
                s++;
            }
            continue;
        }
        key[n++] = c;
    }
    key[n] = '\0';
}

/* Dot products by encoding: capstone 4, which QEMU 7.2 disassembles with, prints them as ".byte". */
static int dot_shape(struct qemu_plugin_insn *insn, char *key)
{
    uint32_t w;
    if (qemu_plugin_insn_size(insn) != 4) {
        return 0;
    }
    memcpy(&w, qemu_plugin_insn_data(insn), 4);
    const char *op = (w >> 29) & 1 ? "udot" : "sdot";
    const char *arr = (w >> 30) & 1 ? "v.4s, v.16b" : "v.2s, v.8b";
    if ((w & 0x9FE0FC00u) == 0x0E809400u) { /* [SU]DOT (vector) */
        snprintf(key, KEY_LEN, "%s %s, v.%s", op, arr, (w >> 30) & 1 ? "16b" : "8b");
        return 1;
    }
    if ((w & 0x9FC0F400u) == 0x0F80E000u) { /* [SU]DOT (by element) */
        snprintf(key, KEY_LEN, "%s %s, v.4b[]", op, arr);
        return 1;
    }
    return 0;
}

#define HASH_SLOTS (2 * MAX_KEYS)
static int32_t slots[HASH_SLOTS]; /* key id + 1, 0 = empty */

static uint32_t key_id(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = key; *c; c++) {
        h = (h ^ (unsigned char)*c) * 16777619u;
    }
    for (uint32_t probe = 0; probe < HASH_SLOTS; probe++) {
        uint32_t slot = (h + probe) % HASH_SLOTS;
        if (slots[slot] == 0) {
            if (n_keys >= MAX_KEYS - 1) {
                break;
            }
            snprintf(key_text[n_keys], KEY_LEN, "%s", key);
            slots[slot] = (int32_t)++n_keys;
            return n_keys - 1;
        }
        if (strcmp(key_text[slots[slot] - 1], key) == 0) {
            return slots[slot] - 1;
        }
    }
    snprintf(key_text[MAX_KEYS - 1], KEY_LEN, "other");
    return MAX_KEYS - 1;
}

/* --- data cache hierarchy ---------------------------------------------------------------------- */

typedef struct {
    uint64_t sets, ways;
    uint64_t *tags;   /* sets * ways; line address + 1, 0 = empty */
    uint64_t *stamp;  /* last use, for LRU */
    uint64_t misses;
} Level;

static Level levels[MAX_LEVELS];
static int n_levels;
static uint64_t accesses;
static uint64_t use_clock;

static int level_access(Level *lv, uint64_t line)
{
    uint64_t set = line % lv->sets;
    uint64_t *tags = lv->tags + set * lv->ways, *stamp = lv->stamp + set * lv->ways;
    uint64_t victim = 0;
    for (uint64_t w = 0; w < lv->ways; w++) {
        if (tags[w] == line + 1) {
            stamp[w] = ++use_clock;
            return 1;
        }
        if (stamp[w] < stamp[victim]) {
            victim = w;
        }
    }
    lv->misses++;
    tags[victim] = line + 1;
    stamp[victim] = ++use_clock;
    return 0;
}

static void cache_line(uint64_t line)
{
    accesses++;
    for (int i = 0; i < n_levels; i++) { /* fill every level on the way in */
        if (level_access(&levels[i], line)) {
            return;
        }
    }
}

static void mem_access(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    if ((int)vcpu_index != __atomic_load_n(&open_vcpu, __ATOMIC_RELAXED)) {
        return;
    }
    uint64_t size = 1u << qemu_plugin_mem_size_shift(info);
    for (uint64_t l = vaddr >> LINE_SHIFT; l <= (vaddr + size - 1) >> LINE_SHIFT; l++) {
        cache_line(l);
    }
}

static int parse_cache(const char *spec)
{
    const char *p = spec;
    while (*p && n_levels < MAX_LEVELS) {
        char *end;
        unsigned long long bytes = strtoull(p, &end, 0);
        if (*end != ':') {
            return -1;
        }
        unsigned long long ways = strtoull(end + 1, &end, 0);
        if (bytes == 0 || ways == 0 || (bytes >> LINE_SHIFT) % ways != 0) {
            return -1;
        }
        Level *lv = &levels[n_levels++];
        lv->ways = ways;
        lv->sets = (bytes >> LINE_SHIFT) / ways;
        lv->tags = calloc(lv->sets * lv->ways, sizeof(uint64_t));
        lv->stamp = calloc(lv->sets * lv->ways, sizeof(uint64_t));
        if (!lv->tags || !lv->stamp) {
            return -1;
        }
        if (*end == '\0') {
            return 0;
        }
        if (*end != '/') {
            return -1;
        }
        p = end + 1;
    }
    return *p ? -1 : 0;
}

/* --- counting ---------------------------------------------------------------------------------- */

static uint64_t all_threads_count(void)
{
    uint64_t total = 0;
    for (int i = 0; i < MAX_VCPUS; i++) {
        total += __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
    }
    return total;
}

/* Runs at the start of every executed translation block: add its instructions and their mix. */
static void tb_exec(unsigned int vcpu_index, void *udata)
{
    TbInfo *tb = udata;
    if (vcpu_index < MAX_VCPUS) {
        /* only this vcpu's thread writes its slot; atomic store keeps the cross-thread sum sane */
        __atomic_store_n(&counts[vcpu_index], counts[vcpu_index] + tb->n_insns, __ATOMIC_RELAXED);
    }
    if ((int)vcpu_index == __atomic_load_n(&open_vcpu, __ATOMIC_RELAXED)) {
        const uint32_t *mult = tb->ids + tb->n_distinct;
        for (uint32_t i = 0; i < tb->n_distinct; i++) {
            key_counts[tb->ids[i]] += mult[i];
        }
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    TbInfo *info = calloc(1, sizeof(TbInfo) + 2 * n * sizeof(uint32_t));
    uint32_t *ids = info->ids, *mult = malloc(n * sizeof(uint32_t) + 1);
    char key[KEY_LEN];
    info->n_insns = n;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (!dot_shape(insn, key)) {
            char *disas = qemu_plugin_insn_disas(insn);
            shape_of(disas ? disas : "?", key);
            free(disas);
        }
        uint32_t k = key_id(key), j = 0;
        while (j < info->n_distinct && ids[j] != k) {
            j++;
        }
        if (j == info->n_distinct) {
            ids[info->n_distinct++] = k;
            mult[j] = 0;
        }
        mult[j]++;
        if (n_levels > 0) {
            qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        }
    }
    pthread_mutex_unlock(&lock);
    memcpy(ids + info->n_distinct, mult, info->n_distinct * sizeof(uint32_t));
    free(mult);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, info);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                       uint64_t a8)
{
    if (num != marker_sysno || vcpu_index >= MAX_VCPUS) {
        return;
    }
    a1 &= 0xffffffffu; /* the magic is an int; ignore sign/upper-half noise on 32-bit guests */
    pthread_mutex_lock(&lock);
    if (a1 == open_magic) {
        open_thread_count = counts[vcpu_index];
        open_all_count = all_threads_count();
        __atomic_store_n(&open_vcpu, (int)vcpu_index, __ATOMIC_RELAXED);
    } else if (a1 == close_magic && open_vcpu >= 0) {
        __atomic_store_n(&open_vcpu, -1, __ATOMIC_RELAXED);
        uint64_t thread = counts[vcpu_index] - open_thread_count;
        uint64_t all = all_threads_count() - open_all_count;
        for (; n_keys_defined < n_keys; n_keys_defined++) {
            fprintf(out, "keydef %u %s\n", n_keys_defined, key_text[n_keys_defined]);
        }
        unsigned used = 0;
        for (unsigned i = 0; i < MAX_KEYS; i++) {
            used += key_counts[i] != 0;
        }
        fprintf(out, "region %lu %" PRIu64 " %" PRIu64 "\n", n_regions, thread, all);
        fprintf(out, "mix %lu %u\n", n_regions, used);
        for (unsigned i = 0; i < MAX_KEYS; i++) {
            if (key_counts[i]) {
                fprintf(out, "k %u %" PRIu64 "\n", i, key_counts[i]);
                key_counts[i] = 0;
            }
        }
        if (n_levels > 0) {
            fprintf(out, "cache %lu %" PRIu64, n_regions, accesses);
            for (int i = 0; i < n_levels; i++) {
                fprintf(out, " %" PRIu64, levels[i].misses);
                levels[i].misses = 0;
            }
            fprintf(out, "\n");
            accesses = 0;
        }
        n_regions++;
        fflush(out);
    }
    pthread_mutex_unlock(&lock);
}

static void plugin_exit(qemu_plugin_id_t id, void *p)
{
    pthread_mutex_lock(&lock);
    if (out) {
        if (open_vcpu >= 0) {
            fprintf(out, "unclosed\n");
        }
        fclose(out);
        out = NULL;
    }
    pthread_mutex_unlock(&lock);
}

static int parse_u64(const char *text, uint64_t *value)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    if (*text == '\0' || *end != '\0') {
        return -1;
    }
    *value = v;
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    const char *out_path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        uint64_t v;
        if (strncmp(arg, "out=", 4) == 0) {
            out_path = arg + 4;
        } else if (strncmp(arg, "sysno=", 6) == 0 && parse_u64(arg + 6, &v) == 0) {
            marker_sysno = (int64_t)v;
        } else if (strncmp(arg, "open=", 5) == 0 && parse_u64(arg + 5, &v) == 0) {
            open_magic = v;
        } else if (strncmp(arg, "close=", 6) == 0 && parse_u64(arg + 6, &v) == 0) {
            close_magic = v;
        } else if (strncmp(arg, "cache=", 6) == 0 && parse_cache(arg + 6) == 0) {
            continue;
        } else {
            fprintf(stderr, "insn_count: bad argument '%s'\n", arg);
            return -1;
        }
    }
    if (!out_path) {
        fprintf(stderr, "insn_count: needs out=<file>\n");
        return -1;
    }
    out = fopen(out_path, "w");
    if (!out) {
        perror("insn_count: cannot open out file");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
