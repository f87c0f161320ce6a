/* gtx/entrypoint.h: the program input (bpf_loader_upgradeable, aligned serialization) as account views.
 *
 * A program defines
 *
 *     uint64_t entrypoint(const uint8_t *input) {
 *       SolAccountInfo accounts[4];
 *       GtxInput in;
 *       gtx_deserialize(input, accounts, GTX_ARRAY_LEN(accounts), &in);
 *       ...switch on in.data[0]...
 *     }
 *
 * Every pointer in a SolAccountInfo points into the input buffer, which is what sol_invoke_signed_c
 * requires of the account infos it is given, and writes through `data` / `*lamports` are the account
 * changes the runtime keeps. Input layout per account: u8 dup marker (0xFF = first occurrence, else
 * the index of the earlier occurrence, then 7 bytes padding); a first occurrence has u8 is_signer,
 * u8 is_writable, u8 executable, 4 bytes padding, key[32], owner[32], u64 lamports, u64 data_len,
 * data[data_len], 10 KiB realloc space, padding to 8, u64 rent_epoch. After the accounts:
 * u64 data_len, data, program_id[32]. */
#ifndef GTX_ENTRYPOINT_H
#define GTX_ENTRYPOINT_H

#include "bytes.h" /* struct copies below may become memcpy calls */
#include "types.h"

#define GTX_NON_DUP_MARKER 0xFFu
#define GTX_MAX_PERMITTED_DATA_INCREASE (10u * 1024u)

/* One account as the program sees it; the field order is the C ABI sol_invoke_signed_c reads. */
typedef struct {
  SolPubkey *key;
  uint64_t *lamports;
  uint64_t data_len; /* a copy: after a CPI that resizes the account, see gtx_account_sync_len */
  uint8_t *data;
  SolPubkey *owner;
  uint64_t rent_epoch;
  bool is_signer;
  bool is_writable;
  bool executable;
} SolAccountInfo;

typedef struct {
  SolAccountInfo *accounts; /* the caller's array */
  uint64_t num_accounts;    /* filled entries: min(accounts in the instruction, capacity) */
  uint64_t total_accounts;  /* accounts in the instruction, including any beyond capacity */
  const uint8_t *data;      /* instruction data */
  uint64_t data_len;
  const SolPubkey *program_id;
} GtxInput;

/* Fill `accounts` (capacity entries) and `out` from the runtime's input. Accounts beyond capacity are
 * skipped, not an error (callers may append accounts); a duplicate is a copy of its first occurrence's
 * view, so both names see the same key, lamports and data. */
static inline void gtx_deserialize(const uint8_t *input, SolAccountInfo *accounts, uint64_t capacity,
                                   GtxInput *out) {
  uint64_t total = *(const uint64_t *)input;
  input += sizeof(uint64_t);
  for (uint64_t i = 0; i < total; i++) {
    uint8_t dup = *input;
    if (dup != GTX_NON_DUP_MARKER) {
      if (i < capacity)
        accounts[i] = accounts[dup];
      input += sizeof(uint64_t);
      continue;
    }
    SolAccountInfo info;
    info.is_signer = input[1] != 0;
    info.is_writable = input[2] != 0;
    info.executable = input[3] != 0;
    input += sizeof(uint64_t);
    info.key = (SolPubkey *)input;
    input += sizeof(SolPubkey);
    info.owner = (SolPubkey *)input;
    input += sizeof(SolPubkey);
    info.lamports = (uint64_t *)input;
    input += sizeof(uint64_t);
    info.data_len = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    info.data = (uint8_t *)input;
    input += info.data_len + GTX_MAX_PERMITTED_DATA_INCREASE;
    input = (const uint8_t *)(((uint64_t)input + 7) & ~(uint64_t)7);
    info.rent_epoch = *(const uint64_t *)input;
    input += sizeof(uint64_t);
    if (i < capacity)
      accounts[i] = info;
  }
  out->accounts = accounts;
  out->num_accounts = total < capacity ? total : capacity;
  out->total_accounts = total;
  out->data_len = *(const uint64_t *)input;
  input += sizeof(uint64_t);
  out->data = input;
  input += out->data_len;
  out->program_id = (const SolPubkey *)input;
}

/* Re-read an account's length from the input buffer (the u64 just before its data). A CPI that resizes
 * an account (System CreateAccount, Allocate) updates that u64 and the data_len of the SolAccountInfo
 * handed to sol_invoke_signed_c, which is often a copy (gtx_create_account passes an array of copies),
 * not the caller's view. A later CPI with the stale view would tell the runtime the account shrank back:
 * "program other than the account's owner changed the size of the account data". */
static inline void gtx_account_sync_len(SolAccountInfo *a) {
  a->data_len = *(const uint64_t *)(a->data - sizeof(uint64_t));
}

#endif
