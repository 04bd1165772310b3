/* Runs a .slim model on raw tensors through the C API's generic entry points:
 *   invoke MODEL.slim INPUTS.bin int8|f32 N
 * INPUTS.bin holds N input tensors back to back (int8 or little-endian f32, as the model's input shape says).
 * Prints the input and output shapes and quantization, then every output value, one per line. */
#include "slimnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void check(int32_t rc, const char *what) {
    if (rc != SLIMNET_OK) {
        fprintf(stderr, "%s: %s\n", what, slimnet_error_message(rc));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: invoke MODEL.slim INPUTS.bin int8|f32 N\n");
        return 2;
    }
    size_t len, in_len;
    unsigned char *blob = slurp(argv[1], &len);
    unsigned char *inputs = slurp(argv[2], &in_len);
    int integer = strcmp(argv[3], "int8") == 0;
    long count = atol(argv[4]);
    void *storage = aligned_alloc(slimnet_model_storage_align(),
                                  (slimnet_model_storage_size() + slimnet_model_storage_align() - 1) /
                                      slimnet_model_storage_align() * slimnet_model_storage_align());
    check(slimnet_model_load(storage, slimnet_model_storage_size(), blob, len), argv[1]);
    size_t dims[4], rank, n_in = 1, n_out = 1, arena_len;
    for (int which = 0; which < 2; which++) {
        int32_t zp;
        float scale;
        check(slimnet_tensor_shape(storage, which, dims, &rank), "shape");
        check(slimnet_tensor_quantization(storage, which, &zp, &scale), "quantization");
        printf("%s", which ? "output" : "input");
        for (size_t i = 0; i < rank; i++) {
            printf(" %zu", dims[i]);
            *(which ? &n_out : &n_in) *= dims[i];
        }
        printf(" zero_point %d scale %.9g\n", zp, scale);
    }
    check(slimnet_arena_len(storage, integer, &arena_len), "arena");
    uint8_t *arena = malloc(arena_len ? arena_len : 1);
    size_t elem = integer ? 1 : 4;
    if ((size_t)count * n_in * elem > in_len) {
        fprintf(stderr, "%s: fewer than %ld inputs\n", argv[2], count);
        return 2;
    }
    int8_t *q = malloc(n_out);
    float *f = malloc(n_out * sizeof(float));
    for (long s = 0; s < count; s++) {
        const unsigned char *x = inputs + (size_t)s * n_in * elem;
        if (integer) {
            check(slimnet_invoke_int8(storage, (const int8_t *)x, n_in, arena, arena_len, q, n_out), "run");
            for (size_t i = 0; i < n_out; i++) printf("%d\n", q[i]);
        } else {
            float *xf = malloc(n_in * sizeof(float));
            memcpy(xf, x, n_in * sizeof(float));
            check(slimnet_invoke_f32(storage, xf, n_in, arena, arena_len, f, n_out), "run");
            for (size_t i = 0; i < n_out; i++) printf("%.9g\n", f[i]);
            free(xf);
        }
    }
    return 0;
}
