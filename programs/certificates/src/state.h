/* Account state of the certificates program, and the registry meter layout it reads (one definition:
 * programs/registry/src/state.h). */
#ifndef CERTIFICATES_STATE_H
#define CERTIFICATES_STATE_H

#include <gtx_sol.h>

#include "../../registry/src/state.h"
#include "error.h"

#define CERT_DISC_CONFIG 0x30u
#define CERT_DISC_MARK 0x31u
#define CERT_DISC_CERTIFICATE 0x32u
/* Version 2: every account sits at the canonical PDA of the seeds it stores, checked at creation. */
#define CERT_VERSION 2u

#define CERT_CONFIG_SEED "config"
#define CERT_MARK_SEED "mark"
#define CERT_SEED "cert"

/* Config: PDA ["config"]. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t reserved[5];
  SolPubkey governance;       /* 8: validates and revokes */
  SolPubkey registry_program; /* 40: whose meters' settled generation is certified */
  int64_t validity_seconds;   /* 72: one year (31,536,000 s) in production */
} CertConfig;
#define CERT_CONFIG_LEN 80u
_Static_assert(sizeof(CertConfig) == CERT_CONFIG_LEN, "config layout");

/* Mark: PDA ["mark", meter account]: how far the meter's settled net generation is certified, in Wh
 * above the meter's baseline (registry meter baseline_net_generation_wh), so it starts at 0 = the
 * baseline and the baseline itself is never certifiable. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t reserved[5];
  SolPubkey meter;             /* 8: the registry meter account */
  uint64_t certified_up_to_wh; /* 40: every certificate so far covers [.., certified_up_to_wh) */
  uint64_t next_index;         /* 48: index of the next certificate of this meter */
} CertMark;
#define CERT_MARK_LEN 56u
_Static_assert(sizeof(CertMark) == CERT_MARK_LEN, "mark layout");

#define CERT_STATUS_PENDING 0u
#define CERT_STATUS_VALID 1u
#define CERT_STATUS_RETIRED 2u
#define CERT_STATUS_REVOKED 3u
#define CERT_STATUS_EXPIRED 4u

/* Certificate: PDA ["cert", meter account, index u64 LE]. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t status;         /* CERT_STATUS_* */
  uint16_t revoke_reason; /* 4: set by Revoke, non-zero */
  uint8_t reserved[2];
  SolPubkey meter;        /* 8 */
  SolPubkey owner;        /* 40: the holder (the meter's owner at issue) */
  uint64_t index;         /* 72 */
  uint64_t from_wh;       /* 80: covers settled net generation [from_wh, to_wh) above the baseline */
  uint64_t to_wh;         /* 88 */
  int64_t issued_at;      /* 96: Clock unix_timestamp */
  int64_t expires_at;     /* 104: issued_at + validity */
  int64_t validated_at;   /* 112: 0 until validated */
  int64_t closed_at;      /* 120: when retired, revoked or expired; 0 before */
} Certificate;
#define CERT_CERTIFICATE_LEN 128u
_Static_assert(sizeof(Certificate) == CERT_CERTIFICATE_LEN, "certificate layout");

static inline uint64_t cert_load(const SolAccountInfo *a, const SolPubkey *program_id, uint8_t disc, uint64_t len,
                                 void **out) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != len) {
    GTX_LOG_KEY("certificates account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != disc || a->data[1] != CERT_VERSION) {
    GTX_LOG_KEY("certificates account is of another type or version:", a->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_WRONG_ACCOUNT_TYPE);
  }
  *out = a->data;
  return SUCCESS;
}

/* Loaders re-derive each account's address from the seeds it stores and its bump (checked canonical at
 * creation), so a certificates account is always the canonical PDA of its own fields. */
static inline uint64_t cert_config_load(const SolAccountInfo *a, const SolPubkey *program_id, CertConfig **out) {
  GTX_TRY(cert_load(a, program_id, CERT_DISC_CONFIG, CERT_CONFIG_LEN, (void **)out));
  SolSignerSeed seed = {(const uint8_t *)CERT_CONFIG_SEED, sizeof(CERT_CONFIG_SEED) - 1};
  SolSignerSeeds seeds = {&seed, 1};
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

static inline void cert_mark_seeds(const SolPubkey *meter, SolSignerSeed parts[3], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)CERT_MARK_SEED;
  parts[0].len = sizeof(CERT_MARK_SEED) - 1;
  parts[1].addr = meter->x;
  parts[1].len = GTX_PUBKEY_LEN;
  out->addr = parts;
  out->len = 2;
}

/* `index_le` must outlive `out`. */
static inline void cert_certificate_seeds(const SolPubkey *meter, const uint8_t index_le[8], SolSignerSeed parts[4],
                                          SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)CERT_SEED;
  parts[0].len = sizeof(CERT_SEED) - 1;
  parts[1].addr = meter->x;
  parts[1].len = GTX_PUBKEY_LEN;
  parts[2].addr = index_le;
  parts[2].len = 8;
  out->addr = parts;
  out->len = 3;
}

static inline uint64_t cert_mark_load(const SolAccountInfo *a, const SolPubkey *program_id, CertMark **out) {
  GTX_TRY(cert_load(a, program_id, CERT_DISC_MARK, CERT_MARK_LEN, (void **)out));
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  cert_mark_seeds(&(*out)->meter, parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}
static inline uint64_t cert_certificate_load(const SolAccountInfo *a, const SolPubkey *program_id,
                                             Certificate **out) {
  GTX_TRY(cert_load(a, program_id, CERT_DISC_CERTIFICATE, CERT_CERTIFICATE_LEN, (void **)out));
  uint8_t index_le[8];
  gtx_store_u64_le(index_le, (*out)->index);
  SolSignerSeed parts[4];
  SolSignerSeeds seeds;
  cert_certificate_seeds(&(*out)->meter, index_le, parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

/* Governance-signed instructions: signer, then config, then the signer is the governance key. */
static inline uint64_t cert_expect_governance(const SolAccountInfo *signer, const SolAccountInfo *config,
                                              const SolPubkey *program_id) {
  GTX_TRY(expect_signer(signer));
  CertConfig *c;
  GTX_TRY(cert_config_load(config, program_id, &c));
  if (!gtx_pubkey_eq(&c->governance, signer->key)) {
    GTX_LOG_KEY("signer is not the governance authority:", signer->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_NOT_GOVERNANCE);
  }
  return SUCCESS;
}

static inline uint64_t cert_now(int64_t *out) {
  SolClock clock;
  if (sol_get_clock_sysvar(&clock) != 0) {
    GTX_LOG("clock sysvar unavailable");
    return ERROR_UNSUPPORTED_SYSVAR;
  }
  *out = clock.unix_timestamp;
  return SUCCESS;
}

/* Transfer and Retire: accounts[0] signs and holds accounts[1], a writable certificate that is Valid and
 * not expired at `*now`. */
static inline uint64_t cert_load_held_valid(const GtxInput *in, Certificate **out, int64_t *now) {
  const SolAccountInfo *holder = &in->accounts[0];
  const SolAccountInfo *certificate = &in->accounts[1];
  GTX_TRY(expect_signer(holder));
  GTX_TRY(expect_writable(certificate));
  Certificate *cert;
  GTX_TRY(cert_certificate_load(certificate, in->program_id, &cert));
  if (!gtx_pubkey_eq(&cert->owner, holder->key)) {
    GTX_LOG_KEY("signer does not hold the certificate:", holder->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_NOT_CERTIFICATE_OWNER);
  }
  if (cert->status != CERT_STATUS_VALID) {
    GTX_LOG_KEY("certificate is not valid:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_STATE);
  }
  GTX_TRY(cert_now(now));
  if (*now >= cert->expires_at) {
    GTX_LOG_KEY("certificate has expired:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_CERTIFICATE_EXPIRED);
  }
  *out = cert;
  return SUCCESS;
}

/* Create a PDA owned by this program at the canonical bump (NonCanonicalBump otherwise): `parts` holds
 * `n` seeds and room for the bump. */
typedef struct {
  const GtxInput *in;
  const SolAccountInfo *payer;
  SolAccountInfo *account; /* data_len is up to date after creation */
  SolSignerSeed *parts;
  uint64_t n;
  uint8_t bump;
  uint64_t len;
} CertCreate;

static inline uint64_t cert_create_pda(const CertCreate *c) {
  SolSignerSeeds seeds = {c->parts, c->n};
  GTX_TRY(gtx_expect_canonical_pda(c->account, &seeds, c->bump, c->in->program_id,
                                   GTX_CUSTOM_ERROR(CERT_ERROR_NON_CANONICAL_BUMP)));
  if (gtx_pubkey_eq(c->account->owner, c->in->program_id) || c->account->data_len != 0) {
    GTX_LOG_KEY("account exists already:", c->account->key);
    return ERROR_ACCOUNT_ALREADY_INITIALIZED;
  }
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(c->len, &lamports));
  uint8_t bump = c->bump;
  c->parts[c->n].addr = &bump;
  c->parts[c->n].len = 1;
  SolSignerSeeds signer = {c->parts, c->n + 1};
  GtxCreateAccount create = {c->payer, c->account, lamports, c->len, c->in->program_id, &signer};
  return gtx_create_pda(&create);
}

#endif
