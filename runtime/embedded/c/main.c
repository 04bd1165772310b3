/* The C firmware: the same job as the Rust one (../src/main.rs) through the C API (runtime/include/slimnet.h),
 * built with arm-none-eabi-gcc against the runtime as a static library. Runs the embedded .slim model on the
 * embedded MNIST test images and prints, through semihosting, the same lines as the Rust firmware:
 *
 *   slimnet-firmware-c board=lm3s6965evb path=int8
 *   model_bytes=16508 arena_bytes=1184 images=250
 *   predictions=7210414...
 *   correct=247/250 accuracy_centi=9880
 *   stack_bytes=...
 *
 * then exits with status 0 (1 on any error). Freestanding: no C library, no heap. */
#include <stddef.h>
#include <stdint.h>

#include "slimnet.h"

/* data.S: the model, the images and their labels, included from files (.incbin). */
extern const uint8_t model_start[], model_end[], images_start[], images_end[], labels_start[], labels_end[];
/* link.ld */
extern uint32_t __sbss[], __ebss[], __sdata[], __edata[], __sidata[], __stack_limit[], __stack_top[];

#ifndef INPUT
#define INPUT 784
#endif
/* Static memory for the model's tables of tensors and operators (slimnet_model_storage_size(), printed as
 * model_storage_bytes) and the arena (slimnet_arena_len()); the firmware checks at start that both are large
 * enough. */
#define STORAGE_BYTES 9216
#define ARENA_BYTES 2048
/* Inferences between two slimnet_verify calls (the run-time re-check of the model's bytes). */
#define VERIFY_EVERY 100
static uint64_t storage[STORAGE_BYTES / 8];
static uint8_t arena[ARENA_BYTES];

#define PAINT 0x5A5A5A5Au

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Line-buffered output through SYS_WRITE0. */
static char line[128];
static size_t line_len;

static void flush(void) {
    line[line_len] = 0;
    semihost(0x04, line);
    line_len = 0;
}

static void put(char c) {
    if (line_len == sizeof line - 1) flush();
    line[line_len++] = c;
    if (c == '\n') flush();
}

static void puts_(const char *s) {
    while (*s) put(*s++);
}

static void putu(size_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) put(digits[--n]);
}

/* SYS_EXIT: ADP_Stopped_ApplicationExit ends QEMU with status 0, RunTimeErrorUnknown with status 1. */
static void __attribute__((noreturn)) exit_(int ok) { /* ok: nonzero for success */
    semihost(0x18, (const void *)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

static void fail(const char *what, int32_t code) {
    puts_("\nerror: ");
    puts_(what);
    puts_(": ");
    puts_(slimnet_error_message(code));
    put('\n');
    exit_(0);
}

static size_t stack_high_water(void) {
    uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == PAINT) p++;
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

int main(void) {
    const char *path = "int8";
    size_t model_len = (size_t)(model_end - model_start);
    size_t images = (size_t)(labels_end - labels_start);
    puts_("slimnet-firmware-c board=" BOARD " path=");
    puts_(path);
    put('\n');
    if (slimnet_model_storage_size() > sizeof storage || slimnet_model_storage_align() > 8) {
        puts_("error: model storage too small\n");
        exit_(0);
    }
    int32_t rc = slimnet_model_load((uint8_t *)storage, sizeof storage, model_start, model_len);
    if (rc != SLIMNET_OK) fail("load", rc);
    const uint8_t *model = (const uint8_t *)storage;
    size_t need = 0;
    rc = slimnet_arena_len(model, 1, &need);
    if (rc != SLIMNET_OK) fail("arena", rc);
    if (need > sizeof arena) {
        puts_("error: arena too small\n");
        exit_(0);
    }
    puts_("model_bytes=");
    putu(model_len);
    puts_(" arena_bytes=");
    putu(need);
    puts_(" images=");
    putu(images);
    puts_(" model_storage_bytes=");
    putu(slimnet_model_storage_size());
    puts_("\npredictions=");
    size_t correct = 0;
    for (size_t i = 0; i < images; i++) {
        int32_t class_ = -1;
        rc = slimnet_run_int8(model, images_start + i * INPUT, INPUT, arena, need, NULL, 0, &class_);
        if (rc != SLIMNET_OK) fail("run", rc);
        correct += class_ == labels_start[i];
        put((char)('0' + class_ % 10));
        if ((i + 1) % VERIFY_EVERY == 0) {
            size_t offset = 0, len = 0;
            rc = slimnet_verify(model, &offset, &len);
            if (rc == SLIMNET_E_FAULT) {
                puts_("\nfault_detected=");
                putu(i + 1);
                puts_(" region_offset=");
                putu(offset);
                puts_(" region_len=");
                putu(len);
                put('\n');
            }
            if (rc != SLIMNET_OK) fail("verify", rc);
        }
    }
    puts_("\ncorrect=");
    putu(correct);
    put('/');
    putu(images);
    puts_(" accuracy_centi=");
    putu(images ? correct * 10000 / images : 0);
    puts_("\nstack_bytes=");
    putu(stack_high_water());
    put('\n');
    exit_(1);
}

/* Zeroes .bss, copies .data, paints the free stack, runs main. */
void __attribute__((noreturn)) reset(void) {
    for (uint32_t *p = __sbss; p < __ebss; p++) *p = 0;
    for (uint32_t *d = __sdata, *s = __sidata; d < __edata; d++, s++) *d = *s;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_limit; p < sp - 16; p++) *p = PAINT;
    main();
    exit_(0);
}

void __attribute__((noreturn)) fault(void) {
    puts_("fault\n");
    exit_(0);
}

/* The vector table: initial stack pointer, reset, then NMI and the fault handlers. */
__attribute__((section(".vector_table"), used)) const void *const vectors[] = {
    __stack_top, (const void *)reset, (const void *)fault, (const void *)fault,
    (const void *)fault, (const void *)fault, (const void *)fault,
};
