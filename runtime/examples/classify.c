/* Classifies MNIST test images with a .slim model through the C API.
 *
 *   classify MODEL.slim IMAGES.idx COUNT [int8]
 *
 * IMAGES.idx is an uncompressed IDX3 file. Prints one predicted class per line; exits non-zero with a message on
 * any error. */
#include "slimnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: classify MODEL.slim IMAGES.idx COUNT [int8 [prepare]]\n");
        return 2;
    }
    int integer = argc > 4 && strcmp(argv[4], "int8") == 0;
    size_t blob_len, idx_len;
    uint8_t *blob = read_file(argv[1], &blob_len);
    uint8_t *idx = read_file(argv[2], &idx_len);
    if (!blob || !idx || idx_len < 16 || be32(idx) != 0x803) {
        fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
        return 1;
    }
    size_t count = (size_t)atol(argv[3]), images = be32(idx + 4), pixels = (size_t)be32(idx + 8) * be32(idx + 12);
    if (count > images) count = images;

    /* Storage for the model: malloc'd here for brevity; a device would use a static buffer. */
    void *storage = aligned_alloc(slimnet_model_storage_align(),
                                  (slimnet_model_storage_size() + slimnet_model_storage_align() - 1) /
                                      slimnet_model_storage_align() * slimnet_model_storage_align());
    int32_t rc = slimnet_model_load(storage, slimnet_model_storage_size(), blob, blob_len);
    if (rc != SLIMNET_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], slimnet_error_message(rc));
        return 1;
    }
    /* Optionally, the sparse operators decoded once into memory of their exact size (faster, more RAM). */
    uint8_t *prepared = NULL;
    if (integer && argc > 5 && strcmp(argv[5], "prepare") == 0) {
        size_t prepared_len;
        slimnet_prepared_len(storage, &prepared_len);
        prepared = malloc(prepared_len ? prepared_len : 1);
        rc = slimnet_prepare(storage, prepared, prepared_len);
        if (rc != SLIMNET_OK) {
            fprintf(stderr, "%s: %s\n", argv[1], slimnet_error_message(rc));
            return 1;
        }
    }
    size_t input_len, classes, arena_len;
    slimnet_model_shape(storage, &input_len, &classes);
    slimnet_arena_len(storage, integer, &arena_len);
    if (input_len != pixels) {
        fprintf(stderr, "%s: images have %zu pixels, the model takes %zu\n", argv[2], pixels, input_len);
        return 1;
    }
    uint8_t *arena = malloc(arena_len ? arena_len : 1);
    for (size_t i = 0; i < count; i++) {
        int32_t cls = -1;
        const uint8_t *img = idx + 16 + i * pixels;
        rc = integer ? slimnet_run_int8(storage, img, pixels, arena, arena_len, NULL, 0, &cls)
                     : slimnet_run_u8(storage, img, pixels, arena, arena_len, NULL, 0, &cls);
        if (rc != SLIMNET_OK) {
            fprintf(stderr, "image %zu: %s\n", i, slimnet_error_message(rc));
            return 1;
        }
        printf("%d\n", cls);
    }
    free(arena);
    free(storage);
    free(prepared);
    free(idx);
    free(blob);
    return 0;
}
