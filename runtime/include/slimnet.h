/* slimnet runtime: C API. Build the static library with
 *   cargo rustc -p slimnet-runtime --release --features capi --crate-type staticlib
 * and link target/release/libslimnet_runtime.a (plus -lpthread -ldl -lm on Linux hosts).
 *
 * Nothing allocates: the caller provides the model storage and the arena. Every function returns SLIMNET_OK (0)
 * or a negative error code; slimnet_error_message() turns a code into text. The blob passed to
 * slimnet_model_load must stay alive and unchanged while the model is used (slimnet_verify detects when it did
 * change: a memory fault). */
#ifndef SLIMNET_H
#define SLIMNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLIMNET_OK 0
#define SLIMNET_E_ARGUMENT (-1)  /* null pointer or bad argument */
#define SLIMNET_E_TRUNCATED (-2) /* truncated file (or its length differs from the header's) */
#define SLIMNET_E_BAD_MAGIC (-3) /* not a .slim file */
#define SLIMNET_E_VERSION (-4)   /* unsupported format version */
#define SLIMNET_E_CHECKSUM (-5)  /* CRC-32 mismatch */
#define SLIMNET_E_SECTION (-6)   /* bad section table */
#define SLIMNET_E_VALUE (-7)     /* invalid field value */
#define SLIMNET_E_SHAPE (-8)     /* operator shape mismatch */
#define SLIMNET_E_OVERFLOW (-9)  /* size overflow */
#define SLIMNET_E_STREAM (-10)   /* corrupt sparse stream */
#define SLIMNET_E_PATH (-11)     /* numeric path not in this model */
#define SLIMNET_E_BUFFER (-12)   /* buffer too small */
#define SLIMNET_E_STORAGE (-13)  /* model storage too small or misaligned */
#define SLIMNET_E_FAULT (-14)    /* slimnet_verify: the model's bytes changed since load */

/* A static, NUL-terminated description of an error code. */
const char *slimnet_error_message(int32_t code);

/* Bytes and alignment of the storage slimnet_model_load fills. */
size_t slimnet_model_storage_size(void);
size_t slimnet_model_storage_align(void);

/* Validates a .slim blob (header, CRC, sections, shapes, streams) without keeping anything. */
int32_t slimnet_validate(const uint8_t *blob, size_t len);

/* Validates the blob and stores the model in `storage`. */
int32_t slimnet_model_load(uint8_t *storage, size_t storage_len, const uint8_t *blob, size_t len);

/* Re-checks the loaded model's bytes against what they were at load (header fields and CRC-32, section by
 * section), allocating nothing: call it between inferences to catch flash or RAM faults. Returns SLIMNET_OK, or
 * SLIMNET_E_FAULT with the byte range of the file that holds the change in *fault_offset and *fault_len (either
 * may be NULL): reload that range from a good copy and verify again. */
int32_t slimnet_verify(const uint8_t *model, size_t *fault_offset, size_t *fault_len);

/* Elements of one input and of one output (the number of classes of a classifier). */
int32_t slimnet_model_shape(const uint8_t *model, size_t *input_len, size_t *classes);

/* Shape of one sample of the input (which = 0) or output (which = 1) tensor, channels last: the rank goes to
 * `rank`, the dimensions to dims[0 .. rank]; `dims` holds 4 values. */
int32_t slimnet_tensor_shape(const uint8_t *model, int32_t which, size_t dims[4], size_t *rank);

/* The integer path's quantization of the input (which = 0) or output (which = 1) tensor:
 * real = (q - zero_point) * scale. */
int32_t slimnet_tensor_quantization(const uint8_t *model, int32_t which, int32_t *zero_point, float *scale);

/* Exact scratch bytes for the f32 path (integer = 0) or the integer-only path (integer = 1). */
int32_t slimnet_arena_len(const uint8_t *model, int32_t integer, size_t *out);

/* Exact bytes slimnet_prepare needs: the sparse operators' prepared forms (0: nothing to prepare). */
int32_t slimnet_prepared_len(const uint8_t *model, size_t *out);

/* Decodes the sparse operators' streams once into `memory` (`len` >= slimnet_prepared_len bytes, live and
 * untouched for as long as the model is used); the integer path then runs them several times faster. Ask
 * slimnet_arena_len again afterwards: the arena's size changes. */
int32_t slimnet_prepare(uint8_t *model, uint8_t *memory, size_t len);

/* Runs the f32 path on raw pixels (0-255); writes up to out_len logits to `out` and the argmax to `class`
 * (either may be NULL). Not available when the library is built with the integer-only feature. */
int32_t slimnet_run_u8(const uint8_t *model, const uint8_t *pixels, size_t pixels_len, uint8_t *arena,
                       size_t arena_len, float *out, size_t out_len, int32_t *class_out);

/* Runs the integer-only path on raw pixels; writes int8 logits and the argmax (either may be NULL). */
int32_t slimnet_run_int8(const uint8_t *model, const uint8_t *pixels, size_t pixels_len, uint8_t *arena,
                         size_t arena_len, int8_t *out, size_t out_len, int32_t *class_out);

/* Runs the integer-only path on one int8 input tensor (input_len values, quantized as
 * slimnet_tensor_quantization says) and writes the int8 output tensor (output_len values). */
int32_t slimnet_invoke_int8(const uint8_t *model, const int8_t *input, size_t input_len, uint8_t *arena,
                            size_t arena_len, int8_t *output, size_t output_len);

/* Runs the f32 path on one f32 input tensor (normalized as the model expects) and writes the f32 output tensor.
 * Not available when the library is built with the integer-only feature. */
int32_t slimnet_invoke_f32(const uint8_t *model, const float *input, size_t input_len, uint8_t *arena,
                           size_t arena_len, float *output, size_t output_len);

#ifdef __cplusplus
}
#endif
#endif /* SLIMNET_H */
