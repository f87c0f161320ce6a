/* gtx/checks.h: account checks. Each returns SUCCESS or its own error, and on failure logs why and the
 * key of the offending account, so a failed transaction's logs say which account was wrong:
 *
 *   expect_accounts(in, n)      ERROR_NOT_ENOUGH_ACCOUNT_KEYS     fewer than n accounts passed
 *   expect_signer(a)            ERROR_MISSING_REQUIRED_SIGNATURES a did not sign
 *   expect_writable(a)          ERROR_INVALID_ARGUMENT            a is not writable in the transaction
 *   expect_owner(a, owner)      ERROR_INVALID_ACCOUNT_OWNER       a is not owned by `owner`
 *   expect_key(a, key)          ERROR_INVALID_ARGUMENT            a is not `key`
 *   expect_program(a, id)       ERROR_INCORRECT_PROGRAM_ID        a is not the executable program `id`
 *   expect_pda(a, seeds, bump, program_id)
 *                               ERROR_INVALID_SEEDS               a is not the PDA of seeds + bump
 *                                                                  (a sha256 compare, gtx/pda.h: for
 *                                                                  addresses this program created at
 *                                                                  their canonical bump)
 *
 * Use them with GTX_TRY, in the order the error should be reported. A program that needs a different
 * error for a check (say its own "wrong authority") tests and returns its custom error instead. */
#ifndef GTX_CHECKS_H
#define GTX_CHECKS_H

#include "bytes.h"
#include "cpi.h"
#include "entrypoint.h"
#include "pda.h"

static inline uint64_t expect_accounts(const GtxInput *in, uint64_t n) {
  if (in->num_accounts < n) {
    GTX_LOG("not enough accounts");
    return ERROR_NOT_ENOUGH_ACCOUNT_KEYS;
  }
  return SUCCESS;
}

static inline uint64_t expect_signer(const SolAccountInfo *a) {
  if (!a->is_signer) {
    GTX_LOG_KEY("missing required signature of", a->key);
    return ERROR_MISSING_REQUIRED_SIGNATURES;
  }
  return SUCCESS;
}

static inline uint64_t expect_writable(const SolAccountInfo *a) {
  if (!a->is_writable) {
    GTX_LOG_KEY("account must be writable:", a->key);
    return ERROR_INVALID_ARGUMENT;
  }
  return SUCCESS;
}

static inline uint64_t expect_owner(const SolAccountInfo *a, const SolPubkey *owner) {
  if (!gtx_pubkey_eq(a->owner, owner)) {
    GTX_LOG_KEY("account has the wrong owner:", a->key);
    return ERROR_INVALID_ACCOUNT_OWNER;
  }
  return SUCCESS;
}

static inline uint64_t expect_key(const SolAccountInfo *a, const SolPubkey *key) {
  if (!gtx_pubkey_eq(a->key, key)) {
    GTX_LOG_KEY("unexpected account:", a->key);
    return ERROR_INVALID_ARGUMENT;
  }
  return SUCCESS;
}

static inline uint64_t expect_program(const SolAccountInfo *a, const SolPubkey *program_id) {
  if (!gtx_pubkey_eq(a->key, program_id) || !a->executable) {
    GTX_LOG_KEY("expected another program, got", a->key);
    return ERROR_INCORRECT_PROGRAM_ID;
  }
  return SUCCESS;
}

/* `seeds` excludes the bump; the stored bump is passed separately. Re-derives the address with sha256
 * (~150 CU) rather than sol_create_program_address (1,500 CU): see gtx/pda.h for why no curve check is
 * needed for an address the program created at its canonical bump. */
static inline uint64_t expect_pda(const SolAccountInfo *a, const SolSignerSeeds *seeds, uint8_t bump,
                                  const SolPubkey *program_id) {
  SolPubkey derived;
  uint64_t r = gtx_pda_hash(seeds, bump, program_id, &derived);
  if (r == SUCCESS && !gtx_pubkey_eq(&derived, a->key))
    r = ERROR_INVALID_SEEDS;
  if (r != SUCCESS)
    GTX_LOG_KEY("account is not the expected program address:", a->key);
  return r;
}

#endif
