/* gtx/system.h: creating program-owned accounts through the System program, and the rent minimum. */
#ifndef GTX_SYSTEM_H
#define GTX_SYSTEM_H

#include "bytes.h"
#include "cpi.h"
#include "ids.h"

/* Minimum lamports for `data_len` bytes to be rent-exempt: (128 + data_len) * lamports_per_byte *
 * exemption_threshold. The threshold is a double and BPF has no floating point, so the two thresholds
 * clusters use are recognised by their bits: 2.0 (with 3,480 lamports per byte-year) and 1.0 (SIMD-0194:
 * 6,960 lamports per byte, as LiteSVM has). Anything else returns ERROR_UNSUPPORTED_SYSVAR rather than a
 * wrong amount. */
#define GTX_ACCOUNT_STORAGE_OVERHEAD 128u
#define GTX_F64_ONE_BITS 0x3FF0000000000000ull
#define GTX_F64_TWO_BITS 0x4000000000000000ull
static inline uint64_t gtx_rent_minimum_balance(uint64_t data_len, uint64_t *out) {
  SolRent rent;
  uint64_t factor;
  if (sol_get_rent_sysvar(&rent) != 0) {
    GTX_LOG("rent sysvar unavailable");
    return ERROR_UNSUPPORTED_SYSVAR;
  }
  if (rent.exemption_threshold_bits == GTX_F64_ONE_BITS) {
    factor = 1;
  } else if (rent.exemption_threshold_bits == GTX_F64_TWO_BITS) {
    factor = 2;
  } else {
    GTX_LOG("rent exemption threshold is neither 1.0 nor 2.0");
    return ERROR_UNSUPPORTED_SYSVAR;
  }
  uint64_t bytes, per_byte;
  GTX_TRY(gtx_add_u64(data_len, GTX_ACCOUNT_STORAGE_OVERHEAD, &bytes));
  GTX_TRY(gtx_mul_u64(bytes, rent.lamports_per_byte, &per_byte));
  return gtx_mul_u64(per_byte, factor, out);
}

/* Arguments of gtx_create_account (a struct: BPF functions take at most 5 arguments). */
typedef struct {
  const SolAccountInfo *payer;       /* writable signer that funds the account */
  SolAccountInfo *new_account;       /* writable; a signer, or a PDA signed for by `signer_seeds`;
                                      * its data_len is brought up to date on success */
  uint64_t lamports;
  uint64_t space;
  const SolPubkey *owner;            /* usually in->program_id */
  const SolSignerSeeds *signer_seeds; /* seeds + bump of new_account when it is a PDA, else NULL */
} GtxCreateAccount;

/* System program CreateAccount (u32 0, u64 lamports, u64 space, owner[32]). The System program account
 * must be one of the instruction's accounts (check it with expect_program(a, &GTX_SYSTEM_PROGRAM_ID)).
 * On success args->new_account->data_len is `space`, so the account can go straight into another CPI. */
static inline uint64_t gtx_create_account(const GtxCreateAccount *args) {
  uint8_t data[4 + 8 + 8 + 32];
  gtx_store_u32_le(data, 0);
  gtx_store_u64_le(data + 4, args->lamports);
  gtx_store_u64_le(data + 12, args->space);
  gtx_memcpy(data + 20, args->owner, GTX_PUBKEY_LEN);
  SolAccountMeta metas[2] = {
      {args->payer->key, true, true},
      {args->new_account->key, true, true},
  };
  SolAccountInfo infos[2] = {*args->payer, *args->new_account};
  SolInstruction ix = {(SolPubkey *)&GTX_SYSTEM_PROGRAM_ID, metas, 2, data, sizeof(data)};
  GTX_TRY(gtx_invoke_signed(&ix, infos, 2, args->signer_seeds, args->signer_seeds ? 1 : 0));
  gtx_account_sync_len(args->new_account);
  return SUCCESS;
}

#endif
