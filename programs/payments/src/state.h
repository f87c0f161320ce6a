/* Account state of the payments program: fixed layouts, discriminator + version + stored canonical bump
 * first, 8-byte fields 8-aligned, checked loaders (owner, exact length, discriminator + version, address
 * re-derived from the stored seeds and bump). Mirrored by programs/payments/client.py. */
#ifndef PAYMENTS_STATE_H
#define PAYMENTS_STATE_H

#include <gtx_sol.h>

#include "error.h"

#define PAYMENTS_DISC_CONFIG 0x40u
#define PAYMENTS_DISC_DEPOSIT 0x41u
#define PAYMENTS_VERSION 1u /* every account at its canonical PDA from the start */

#define PAYMENTS_CONFIG_SEED "config"
#define PAYMENTS_AUTHORITY_SEED "authority" /* THBC's mint authority: no data */
#define PAYMENTS_DEPOSIT_SEED "deposit"
#define PAYMENTS_REFERENCE_LEN 32u
#define THBC_DECIMALS 6u

/* Config: PDA ["config"], written by Initialize and SetOperator only. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t authority_bump;
  uint8_t reserved[4];
  SolPubkey authority; /* 8: may replace the operator (the upgrade authority at Initialize) */
  SolPubkey operator_; /* 40: the payment operator: issues THBC against confirmed deposits */
  SolPubkey mint;      /* 72: THBC */
  SolPubkey mint_authority; /* 104: PDA ["authority"] */
} PaymentsConfig;
#define PAYMENTS_CONFIG_LEN 136u
_Static_assert(sizeof(PaymentsConfig) == PAYMENTS_CONFIG_LEN, "config layout");

/* Deposit: PDA ["deposit", reference[32]], one per fiat deposit reference, ever. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t reserved[5];
  uint8_t reference[PAYMENTS_REFERENCE_LEN]; /* 8 */
  SolPubkey payer;       /* 40: the holder of the token account credited */
  SolPubkey destination; /* 72: the THBC token account credited */
  uint64_t amount;       /* 104: THBC base units issued */
  int64_t issued_at;     /* 112: Clock unix_timestamp */
} Deposit;
#define PAYMENTS_DEPOSIT_LEN 120u
_Static_assert(sizeof(Deposit) == PAYMENTS_DEPOSIT_LEN, "deposit layout");

static inline uint64_t payments_load(const SolAccountInfo *a, const SolPubkey *program_id, uint8_t disc,
                                     uint64_t len) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != len) {
    GTX_LOG_KEY("payments account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != disc || a->data[1] != PAYMENTS_VERSION) {
    GTX_LOG_KEY("payments account is of another type or version:", a->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_ACCOUNT_TYPE);
  }
  return SUCCESS;
}

static inline void payments_config_seeds(SolSignerSeed parts[2], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)PAYMENTS_CONFIG_SEED;
  parts[0].len = sizeof(PAYMENTS_CONFIG_SEED) - 1;
  out->addr = parts;
  out->len = 1;
}

static inline void payments_deposit_seeds(const uint8_t reference[PAYMENTS_REFERENCE_LEN], SolSignerSeed parts[3],
                                          SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)PAYMENTS_DEPOSIT_SEED;
  parts[0].len = sizeof(PAYMENTS_DEPOSIT_SEED) - 1;
  parts[1].addr = reference;
  parts[1].len = PAYMENTS_REFERENCE_LEN;
  out->addr = parts;
  out->len = 2;
}

/* The one config: owner, size, type, and the canonical PDA ["config"] (re-derived from its bump). */
static inline uint64_t payments_config_load(const SolAccountInfo *a, const SolPubkey *program_id,
                                            PaymentsConfig **out) {
  GTX_TRY(payments_load(a, program_id, PAYMENTS_DISC_CONFIG, PAYMENTS_CONFIG_LEN));
  *out = (PaymentsConfig *)a->data;
  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  payments_config_seeds(parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

static inline int64_t payments_now(void) {
  SolClock clock;
  return sol_get_clock_sysvar(&clock) == 0 ? clock.unix_timestamp : 0;
}

#endif
