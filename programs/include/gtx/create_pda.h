/* gtx/create_pda.h: create a PDA account even if someone has already sent lamports to its address.
 *
 * System CreateAccount refuses an address that holds lamports, and PDA addresses are public (a meter's
 * PDA is derived from its printed id), so anyone could block a registration with a 1-lamport transfer.
 * When the address already holds lamports but is still a plain System account with no data, this tops
 * it up to `lamports` (Transfer from the payer), then Allocate(space) and Assign(owner), both signed by
 * the PDA; otherwise it is one CreateAccount (gtx_create_account). Either way, on success
 * args->new_account->data_len is `space` (gtx_account_sync_len), ready for the next CPI.
 *
 *   gtx_create_pda(&GtxCreateAccount)   args->signer_seeds must be the PDA's seeds + bump
 *       ERROR_ACCOUNT_ALREADY_INITIALIZED  the address is owned by another program or holds data
 *       (the System program's own errors otherwise) */
#ifndef GTX_CREATE_PDA_H
#define GTX_CREATE_PDA_H

#include "bytes.h"
#include "cpi.h"
#include "ids.h"
#include "system.h"

#define GTX_SYSTEM_IX_ASSIGN 1u
#define GTX_SYSTEM_IX_TRANSFER 2u
#define GTX_SYSTEM_IX_ALLOCATE 8u

/* One-account System instruction signed by the PDA (Allocate, Assign). */
static inline uint64_t gtx_system_pda_invoke1(const SolAccountInfo *account, uint8_t *data, uint64_t len,
                                              const SolSignerSeeds *seeds) {
  SolAccountMeta meta = {account->key, true, true};
  SolInstruction ix = {(SolPubkey *)&GTX_SYSTEM_PROGRAM_ID, &meta, 1, data, len};
  return gtx_invoke_signed(&ix, account, 1, seeds, 1);
}

static inline uint64_t gtx_create_pda(const GtxCreateAccount *args) {
  SolAccountInfo *a = args->new_account;
  uint64_t held = *a->lamports;
  if (held == 0)
    return gtx_create_account(args);
  if (!gtx_pubkey_eq(a->owner, &GTX_SYSTEM_PROGRAM_ID) || a->data_len != 0) {
    GTX_LOG_KEY("account exists already:", a->key);
    return ERROR_ACCOUNT_ALREADY_INITIALIZED;
  }
  if (held < args->lamports) {
    uint8_t data[12];
    gtx_store_u32_le(data, GTX_SYSTEM_IX_TRANSFER);
    gtx_store_u64_le(data + 4, args->lamports - held);
    /* Transfer's accounts: from [w, s], to [w] */
    SolAccountMeta metas[2] = {{args->payer->key, true, true}, {a->key, true, false}};
    SolAccountInfo infos[2] = {*args->payer, *a};
    SolInstruction ix = {(SolPubkey *)&GTX_SYSTEM_PROGRAM_ID, metas, 2, data, sizeof(data)};
    GTX_TRY(gtx_invoke(&ix, infos, 2));
  }
  uint8_t allocate[12];
  gtx_store_u32_le(allocate, GTX_SYSTEM_IX_ALLOCATE);
  gtx_store_u64_le(allocate + 4, args->space);
  GTX_TRY(gtx_system_pda_invoke1(a, allocate, sizeof(allocate), args->signer_seeds));
  gtx_account_sync_len(a);
  uint8_t assign[4 + GTX_PUBKEY_LEN];
  gtx_store_u32_le(assign, GTX_SYSTEM_IX_ASSIGN);
  gtx_memcpy(assign + 4, args->owner, GTX_PUBKEY_LEN);
  return gtx_system_pda_invoke1(a, assign, sizeof(assign), args->signer_seeds);
}

#endif
