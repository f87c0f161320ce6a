/* gtx/syscalls.h: the Solana syscalls our programs use.
 *
 * They are undefined symbols to the compiler; programs/toolchain/linker.py turns each call into a
 * dynamic R_BPF_64_32 relocation against the name, which the loader resolves (and refuses at deploy time
 * if the runtime has no such syscall). Lengths are declared uint64_t: every argument travels in a 64-bit
 * register, and a full-width type avoids relying on how the upper bits of an `int` are set. */
#ifndef GTX_SYSCALLS_H
#define GTX_SYSCALLS_H

#include "types.h"

/* Logging: "Program log: <text>", five numbers in hex, a base58 key, and events ("Program data: ..."). */
void sol_log_(const char *message, uint64_t len);
void sol_log_64_(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);
void sol_log_pubkey(const SolPubkey *pubkey);
void sol_log_data(const SolBytes *fields, uint64_t fields_len);
void sol_log_compute_units_(void);

/* Memory: cheaper than byte loops for more than a few bytes; sol_memcpy_ refuses overlapping ranges. */
void sol_memcpy_(void *dst, const void *src, uint64_t n);
void sol_memmove_(void *dst, const void *src, uint64_t n);
void sol_memset_(void *dst, uint8_t value, uint64_t n);
void sol_memcmp_(const void *a, const void *b, uint64_t n, int32_t *result);

/* Hashing: result is 32 bytes. */
uint64_t sol_sha256(const SolBytes *slices, uint64_t slices_len, uint8_t *result);

/* Return data for the caller (at most 1024 bytes). */
void sol_set_return_data(const uint8_t *data, uint64_t len);

/* Sysvars read without passing their account. */
typedef struct {
  uint64_t slot;
  int64_t epoch_start_timestamp;
  uint64_t epoch;
  uint64_t leader_schedule_epoch;
  int64_t unix_timestamp;
} SolClock;
uint64_t sol_get_clock_sysvar(SolClock *out);

/* Rent keeps a double; BPF has no floating point, so programs read it through gtx_rent_minimum_balance
 * in gtx/system.h, which recognises the thresholds clusters use. */
typedef struct {
  uint64_t lamports_per_byte; /* "lamports_per_byte_year" before SIMD-0194 */
  uint64_t exemption_threshold_bits; /* IEEE-754 double, as bits */
  uint8_t burn_percent;
} SolRent;
uint64_t sol_get_rent_sysvar(SolRent *out);

#endif
