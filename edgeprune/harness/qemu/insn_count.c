/*
 * QEMU TCG plugin: count executed guest instructions between two marker syscalls.
 *
 * The guest opens a region with sched_get_priority_max(4242) and closes it with
 * sched_get_priority_max(4243); both fail harmlessly with EINVAL.  The syscall number differs
 * per guest ABI (aarch64: 125, 32-bit arm EABI: 159), so it is a plugin argument.
 *
 * Counting is per guest thread (vcpu): a region counts the instructions executed by the thread
 * that opened it, which keeps the count deterministic even if worker threads spin.  The total over
 * all threads is written next to it.  One line per closed region, in order:
 *     region <index> <opener-thread instructions> <all-thread instructions>
 *
 * Arguments: out=<file> (required), sysno=<n> (default 125), open=<n> (4242), close=<n> (4243).
 * Built against qemu-plugin.h of the QEMU that loads it (API of QEMU 7.2: no per-vcpu scoreboard,
 * so a per-TB callback adds into a per-vcpu slot instead of an inline add into one shared counter).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 1024 /* guest threads alive at once; later indices are not counted */

static uint64_t counts[MAX_VCPUS];
static int64_t marker_sysno = 125;
static uint64_t open_magic = 4242;
static uint64_t close_magic = 4243;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static int open_vcpu = -1;
static uint64_t open_thread_count;
static uint64_t open_all_count;
static unsigned long n_regions;

static uint64_t all_threads_count(void)
{
    uint64_t total = 0;
    for (int i = 0; i < MAX_VCPUS; i++) {
        total += __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
    }
    return total;
}

/* Runs at the start of every executed translation block: add its instruction count. */
static void tb_exec(unsigned int vcpu_index, void *udata)
{
    if (vcpu_index < MAX_VCPUS) {
        /* only this vcpu's thread writes its slot; atomic store keeps the cross-thread sum sane */
        __atomic_store_n(&counts[vcpu_index], counts[vcpu_index] + (uintptr_t)udata, __ATOMIC_RELAXED);
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uintptr_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)n);
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
        open_vcpu = (int)vcpu_index;
        open_thread_count = counts[vcpu_index];
        open_all_count = all_threads_count();
    } else if (a1 == close_magic && open_vcpu >= 0) {
        uint64_t thread = counts[open_vcpu] - open_thread_count;
        uint64_t all = all_threads_count() - open_all_count;
        fprintf(out, "region %lu %" PRIu64 " %" PRIu64 "\n", n_regions++, thread, all);
        fflush(out);
        open_vcpu = -1;
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
