/* Run-time fault detection through the C API:
 *   verify MODEL.slim STEP
 * Loads the model, checks it with slimnet_verify, then flips every STEP-th bit of the loaded blob in turn (as a
 * flash or RAM fault would), verifies, and restores it. Prints one line per flip, "BIT CODE OFFSET LEN" (the
 * code slimnet_verify returned and the range it says to reload), and "clean CODE" for the intact blob at the
 * start and the end. */
#include "slimnet.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: verify MODEL.slim STEP\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *blob = malloc(n ? (size_t)n : 1);
    if (!blob || fread(blob, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", argv[1]);
        return 2;
    }
    fclose(f);
    size_t len = (size_t)n, step = (size_t)atol(argv[2]);
    size_t align = slimnet_model_storage_align();
    void *storage = aligned_alloc(align, (slimnet_model_storage_size() + align - 1) / align * align);
    int32_t rc = slimnet_model_load(storage, slimnet_model_storage_size(), blob, len);
    if (rc != SLIMNET_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], slimnet_error_message(rc));
        return 1;
    }
    printf("clean %d\n", (int)slimnet_verify(storage, NULL, NULL));
    for (size_t bit = 0; step && bit < len * 8; bit += step) {
        size_t offset = 0, range = 0;
        blob[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        rc = slimnet_verify(storage, &offset, &range);
        blob[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        printf("%zu %d %zu %zu\n", bit, (int)rc, offset, range);
    }
    printf("clean %d\n", (int)slimnet_verify(storage, NULL, NULL));
    free(storage);
    free(blob);
    return 0;
}
