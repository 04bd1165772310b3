/* QEMU (7.2, plugin API v1) TCG plugin: how many times each guest instruction ran between two marker PCs, for
 * bench/cycles.py's estimate of cycles from the instruction mix.
 *   -plugin ./libinsnprof.so,start=0xADDR,stop=0xADDR,out=PATH
 * writes "regions N" and then one "PC COUNT" line (hex PC, decimal count) per instruction that ran inside a
 * start..stop region. Built like ../../../shared/embedded/insncount/insncount.c, whose declarations it repeats
 * (Debian ships no qemu-plugin.h); an exec callback per instruction, so it runs slower than insncount's inline
 * counter, which remains the source of the instruction totals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void *);
typedef void (*vcpu_udata_cb_t)(unsigned int, void *);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *, enum qemu_plugin_op, void *, uint64_t);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, vcpu_udata_cb_t, enum qemu_plugin_cb_flags, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* Code lies below 4 MiB on the MPS2 boards (flash at 0). */
#define SLOTS (1u << 21)
static uint64_t counts[SLOTS];
static uint64_t start_pc = UINT64_MAX, stop_pc = UINT64_MAX, regions;
static int active;
static char out_path[4096] = "insnprof.txt";

static void on_start(unsigned int vcpu, void *u) { active = 1; regions++; }
static void on_stop(unsigned int vcpu, void *u) { active = 0; }
static void on_insn(unsigned int vcpu, void *u) { if (active) (*(uint64_t *)u)++; }

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == start_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == stop_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc / 2 < SLOTS)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_NO_REGS, &counts[pc / 2]);
    }
}

static void at_exit(qemu_plugin_id_t id, void *u) {
    FILE *f = fopen(out_path, "w");
    if (!f) { fprintf(stderr, "insnprof: cannot write %s\n", out_path); return; }
    fprintf(f, "regions %llu\n", (unsigned long long)regions);
    for (uint32_t i = 0; i < SLOTS; i++)
        if (counts[i]) fprintf(f, "%x %llu\n", i * 2, (unsigned long long)counts[i]);
    fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "start=", 6)) start_pc = strtoull(argv[i] + 6, NULL, 0) & ~1ULL;
        else if (!strncmp(argv[i], "stop=", 5)) stop_pc = strtoull(argv[i] + 5, NULL, 0) & ~1ULL;
        else if (!strncmp(argv[i], "out=", 4)) snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
