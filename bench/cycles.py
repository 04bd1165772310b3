"""Cycles estimated from an instruction mix: QEMU counts instructions, not cycles, so this weighs each executed
instruction (bench/insnprof's per-PC counts over one ELF's disassembly) by its cost in the core's Technical
Reference Manual, zero wait states:

  Cortex-M4 (DDI 0439, table 3-1): data processing, shifts, bit fields, extends (SXTB16, SXTAB16 too), IT: 1;
    MUL, MLA, MLS, SMULL, UMULL, SMLAL, UMLAL and the DSP multiply-adds (SMLAD, SMLABB, ...): 1;
    LDR/STR (any width): 2, or 1 right after another single load or store (they pipeline);
    LDRD/STRD: 3; LDM/STM/PUSH/POP: 1 + registers (+2 when POP or LDM loads the PC);
    a branch: 1, + 2 when taken (the TRM's P, 1 to 3); SDIV/UDIV: 7 (2 to 12, by operands).
  Cortex-M3 (DDI 0337, table 18.1): as the M4, except MLA/MLS 2, SMULL/UMULL 4 (3 to 5), SMLAL/UMLAL 5 (4 to 7);
    the M3 has no DSP instructions.

Taken branches are not counted by QEMU: a conditional branch at PC counts as taken as often as it ran more than
the instruction after it did (exact unless that instruction is also a branch target). Estimates, not
measurements: real parts add flash wait states (an M4 at 168 MHz has 5) that prefetch hides only partly. The
Cortex-M7 (dual issue, branch prediction) is not modelled.

  python3 bench/cycles.py FW.dis PROFILE.txt m3|m4 [--functions N]
prints one JSON object: instructions and cycles per region (per inference), and the mix.
"""

import json
import re
import sys

COND = "(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)"
BRANCH = re.compile(rf"^(b|bl|bx|blx){COND}?$|^cbn?z$")
MULTIPLY = re.compile(r"^(mul|mla|mls|smull|umull|smlal|umlal|smla[bdtw]|smlsd|smua|smus|smul[bwt]|smmul|smmla|smmls)")
LONG_ADD = re.compile(r"^(smlal|umlal)")
LONG = re.compile(r"^(smull|umull)")
ACCUMULATE = re.compile(r"^(mla|mls)")


def parse(dis):
    """[(address, function, mnemonic, operands)] in address order."""
    out, func = [], "?"
    for line in open(dis):
        m = re.match(r"^([0-9a-f]+) <(.*)>:", line)
        if m:
            func = m.group(2)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m:
            mnemonic = m.group(2).split(".")[0]
            out.append((int(m.group(1), 16), func, mnemonic, m.group(3)))
    return out


def cost(core, mnemonic, operands, after_memory):
    """(class, cycles) of one execution, a taken branch's refill excluded."""
    if mnemonic.startswith(("ldm", "pop", "stm", "push")):
        regs = operands[operands.find("{") + 1:operands.find("}")]
        n = len([r for r in regs.split(",") if r.strip()])
        pc = 2 if "pc" in regs and mnemonic.startswith(("ldm", "pop")) else 0
        return "load/store multiple", 1 + n + pc
    if mnemonic.startswith(("ldrd", "strd")):
        return "load/store", 3
    if mnemonic.startswith(("ldr", "str")):
        return "load/store", 1 if after_memory else 2
    if BRANCH.match(mnemonic):
        return "branch", 1
    if mnemonic in ("sdiv", "udiv"):
        return "divide", 7
    if MULTIPLY.match(mnemonic):
        if core == "m3":
            if LONG_ADD.match(mnemonic):
                return "multiply", 5
            if LONG.match(mnemonic):
                return "multiply", 4
            if ACCUMULATE.match(mnemonic):
                return "multiply", 2
        return "multiply", 1
    return "other", 1


def estimate(dis, profile, core, functions=0):
    code = parse(dis)
    counts, regions = {}, 1
    for line in open(profile):
        a, c = line.split()
        if a == "regions":
            regions = max(int(c), 1)
        else:
            counts[int(a, 16)] = int(c)
    mix = {}
    per_function = {}
    total_insns = total_cycles = 0
    previous_memory = False
    for i, (address, func, mnemonic, operands) in enumerate(code):
        n = counts.get(address, 0)
        kind, cycles = cost(core, mnemonic, operands, previous_memory)
        previous_memory = kind == "load/store"
        if n == 0:
            continue
        spent = n * cycles
        if kind == "branch":
            unconditional = mnemonic in ("b", "bl", "bx", "blx")
            following = counts.get(code[i + 1][0], 0) if i + 1 < len(code) else 0
            taken = n if unconditional else max(n - following, 0)
            spent += 2 * taken
            mix["branches taken"] = mix.get("branches taken", 0) + taken
        mix[kind] = mix.get(kind, 0) + n
        total_insns += n
        total_cycles += spent
        per_function[func] = per_function.get(func, 0) + spent
    result = {
        "core": {"m3": "cortex-m3", "m4": "cortex-m4"}[core],
        "instructions_per_inference": round(total_insns / regions),
        "cycles_estimate_per_inference": round(total_cycles / regions),
        "mix_per_inference": {k: round(v / regions) for k, v in sorted(mix.items())},
    }
    if functions:
        top = sorted(per_function.items(), key=lambda kv: -kv[1])[:functions]
        result["cycles_by_function"] = {f: round(c / regions) for f, c in top}
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    n = 0
    if "--functions" in args:
        k = args.index("--functions")
        n = int(args[k + 1])
        del args[k:k + 2]
    if len(args) != 3 or args[2] not in ("m3", "m4"):
        sys.exit("usage: cycles.py FW.dis PROFILE.txt m3|m4 [--functions N]")
    print(json.dumps(estimate(*args, functions=n)))
