/* gtx/types.h: basic types and the error-code convention for GridTokenX on-chain programs.
 *
 * Programs are freestanding C for SBPF v0 (clang-19 -target bpf -mcpu=v2): no libc, no mutable
 * globals, at most 5 arguments per function, 4 KiB stack frames, call depth 64.
 *
 * Return values: 0 is success. A built-in error is `n << 32` (the ERROR_* macros below; the runtime
 * shows them by name, e.g. MissingRequiredSignature). Any other non-zero value below 2^32 is a program
 * custom error, shown as InstructionError::Custom(n): each program numbers its own from 1 in its
 * error.h, and programs/client/errors.py maps them back to names. */
#ifndef GTX_TYPES_H
#define GTX_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GTX_PUBKEY_LEN 32u

/* The runtime's 32-byte public key (name and layout fixed by the C ABI of sol_invoke_signed_c). */
typedef struct {
  uint8_t x[GTX_PUBKEY_LEN];
} SolPubkey;

/* A byte slice, as sol_log_data and sol_sha256 take it. */
typedef struct {
  const uint8_t *addr;
  uint64_t len;
} SolBytes;

#define SUCCESS 0ull
#define GTX_BUILTIN_ERROR(n) ((uint64_t)(n) << 32)
/* A program's own error n (1 <= n < 2^32); 0 would mean success, use ERROR_CUSTOM_ZERO for Custom(0). */
#define GTX_CUSTOM_ERROR(n) ((uint64_t)(uint32_t)(n))

/* Built-in errors (solana-program-error ProgramError numbering). */
#define ERROR_CUSTOM_ZERO GTX_BUILTIN_ERROR(1)
#define ERROR_INVALID_ARGUMENT GTX_BUILTIN_ERROR(2)
#define ERROR_INVALID_INSTRUCTION_DATA GTX_BUILTIN_ERROR(3)
#define ERROR_INVALID_ACCOUNT_DATA GTX_BUILTIN_ERROR(4)
#define ERROR_ACCOUNT_DATA_TOO_SMALL GTX_BUILTIN_ERROR(5)
#define ERROR_INSUFFICIENT_FUNDS GTX_BUILTIN_ERROR(6)
#define ERROR_INCORRECT_PROGRAM_ID GTX_BUILTIN_ERROR(7)
#define ERROR_MISSING_REQUIRED_SIGNATURES GTX_BUILTIN_ERROR(8)
#define ERROR_ACCOUNT_ALREADY_INITIALIZED GTX_BUILTIN_ERROR(9)
#define ERROR_UNINITIALIZED_ACCOUNT GTX_BUILTIN_ERROR(10)
#define ERROR_NOT_ENOUGH_ACCOUNT_KEYS GTX_BUILTIN_ERROR(11)
#define ERROR_ACCOUNT_BORROW_FAILED GTX_BUILTIN_ERROR(12)
#define ERROR_MAX_SEED_LENGTH_EXCEEDED GTX_BUILTIN_ERROR(13)
#define ERROR_INVALID_SEEDS GTX_BUILTIN_ERROR(14)
#define ERROR_BORSH_IO_ERROR GTX_BUILTIN_ERROR(15)
#define ERROR_ACCOUNT_NOT_RENT_EXEMPT GTX_BUILTIN_ERROR(16)
#define ERROR_UNSUPPORTED_SYSVAR GTX_BUILTIN_ERROR(17)
#define ERROR_ILLEGAL_OWNER GTX_BUILTIN_ERROR(18)
#define ERROR_MAX_ACCOUNTS_DATA_ALLOCATIONS_EXCEEDED GTX_BUILTIN_ERROR(19)
#define ERROR_INVALID_ACCOUNT_DATA_REALLOC GTX_BUILTIN_ERROR(20)
#define ERROR_MAX_INSTRUCTION_TRACE_LENGTH_EXCEEDED GTX_BUILTIN_ERROR(21)
#define ERROR_BUILTIN_PROGRAMS_MUST_CONSUME_COMPUTE_UNITS GTX_BUILTIN_ERROR(22)
#define ERROR_INVALID_ACCOUNT_OWNER GTX_BUILTIN_ERROR(23)
#define ERROR_ARITHMETIC_OVERFLOW GTX_BUILTIN_ERROR(24)
#define ERROR_IMMUTABLE GTX_BUILTIN_ERROR(25)
#define ERROR_INCORRECT_AUTHORITY GTX_BUILTIN_ERROR(26)

/* Propagate a non-zero result: `GTX_TRY(expect_signer(a));` */
#define GTX_TRY(expr)          \
  do {                         \
    uint64_t gtx_try_r_ = (expr); \
    if (gtx_try_r_ != SUCCESS) \
      return gtx_try_r_;       \
  } while (0)

#define GTX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
