/* gtx/bytes.h: unaligned little-endian access, checked u64 arithmetic, memory helpers, logging macros.
 *
 * Instruction data and account data fields are at arbitrary offsets, so never cast a byte pointer to a
 * wider type: use gtx_load_* / gtx_store_*. Arithmetic on amounts goes through gtx_add/sub/mul_u64, which
 * return ERROR_ARITHMETIC_OVERFLOW instead of wrapping. */
#ifndef GTX_BYTES_H
#define GTX_BYTES_H

#include "syscalls.h"
#include "types.h"

static inline uint16_t gtx_load_u16_le(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t gtx_load_u32_le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t gtx_load_u64_le(const uint8_t *p) {
  return (uint64_t)gtx_load_u32_le(p) | (uint64_t)gtx_load_u32_le(p + 4) << 32;
}

static inline void gtx_store_u16_le(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void gtx_store_u32_le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void gtx_store_u64_le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Checked arithmetic: *out is written only on success. */
static inline uint64_t gtx_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
  uint64_t r = a + b;
  if (r < a)
    return ERROR_ARITHMETIC_OVERFLOW;
  *out = r;
  return SUCCESS;
}

static inline uint64_t gtx_sub_u64(uint64_t a, uint64_t b, uint64_t *out) {
  if (b > a)
    return ERROR_ARITHMETIC_OVERFLOW;
  *out = a - b;
  return SUCCESS;
}

/* Schoolbook on 32-bit halves. Neither __builtin_mul_overflow nor the `b > UINT64_MAX / a` idiom can be
 * used: LLVM turns both into a 128-bit multiply, which BPF lowers to a libcall (__multi3) that does not
 * exist on chain ("A call to built-in function '__multi3' is not supported"). */
static inline uint64_t gtx_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  uint64_t a_hi = a >> 32, a_lo = a & 0xFFFFFFFFu, b_hi = b >> 32, b_lo = b & 0xFFFFFFFFu;
  if (a_hi != 0 && b_hi != 0)
    return ERROR_ARITHMETIC_OVERFLOW;
  uint64_t cross = a_hi * b_lo + a_lo * b_hi; /* one term is 0, so this cannot wrap */
  if (cross > 0xFFFFFFFFu)
    return ERROR_ARITHMETIC_OVERFLOW;
  uint64_t low = a_lo * b_lo;
  uint64_t r = low + (cross << 32);
  if (r < low)
    return ERROR_ARITHMETIC_OVERFLOW;
  *out = r;
  return SUCCESS;
}

/* Memory helpers over the syscalls. */
static inline void gtx_memcpy(void *dst, const void *src, uint64_t n) { sol_memcpy_(dst, src, n); }
static inline void gtx_memset(void *dst, uint8_t value, uint64_t n) { sol_memset_(dst, value, n); }
static inline bool gtx_memeq(const void *a, const void *b, uint64_t n) {
  int32_t r = 1;
  sol_memcmp_(a, b, n, &r);
  return r == 0;
}
static inline bool gtx_pubkey_eq(const SolPubkey *a, const SolPubkey *b) {
  return gtx_memeq(a, b, GTX_PUBKEY_LEN);
}

/* clang emits calls to these for large struct copies and initialisers even with -fno-builtin. They are
 * weak so that every translation unit may include this header; the linker keeps one copy. */
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n) {
  sol_memcpy_(dst, src, n);
  return dst;
}
__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n) {
  sol_memmove_(dst, src, n);
  return dst;
}
__attribute__((weak)) void *memset(void *dst, int value, size_t n) {
  sol_memset_(dst, (uint8_t)value, n);
  return dst;
}
__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n) {
  int32_t r = 0;
  sol_memcmp_(a, b, n, &r);
  return r;
}

/* Log a string literal (no strlen on chain: the length is known at compile time). */
#define GTX_LOG(literal) sol_log_("" literal, sizeof(literal) - 1)
/* Log a message and the key it is about: two log lines, only ever on a failure path. */
static inline void gtx_log_key(const char *message, uint64_t len, const SolPubkey *key) {
  sol_log_(message, len);
  sol_log_pubkey(key);
}
#define GTX_LOG_KEY(literal, key) gtx_log_key("" literal, sizeof(literal) - 1, (key))

#endif
