/* Account state of the registry program. Every account starts with an 8-byte header: discriminator,
 * version, bump, then per-type bytes; the u64 / pubkey fields sit at 8-aligned offsets (account data is
 * 8-aligned in the input buffer). Layouts are mirrored by programs/registry/client.py. */
#ifndef REGISTRY_STATE_H
#define REGISTRY_STATE_H

#include <gtx_sol.h>
#include <gtx/create_pda.h>

#include "error.h"

/* Discriminators are unique across the GridTokenX programs (0x1_ registry, 0x2_ energy token,
 * 0x3_ certificates), so no account of one kind can be read as another. */
#define REGISTRY_DISC_CONFIG 0x10u
#define REGISTRY_DISC_USER 0x11u
#define REGISTRY_DISC_METER 0x12u
/* Version 2: every account sits at the canonical PDA of the seeds it stores (bump = the one
 * find_program_address returns), checked when it is created; version-1 accounts (any valid bump) are
 * refused. */
#define REGISTRY_VERSION 2u

#define CONFIG_SEED "config"
#define USER_SEED "user"
#define METER_SEED "meter"

/* Config: PDA ["config"]. Who governs meters, and who may record settlements (the energy-token
 * program's authority PDA). */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t reserved[5];
  SolPubkey authority;            /* 8: may change meter status */
  SolPubkey settlement_authority; /* 40: may record accepted readings and settled marks */
} RegistryConfig;
#define REGISTRY_CONFIG_LEN 72u
_Static_assert(sizeof(RegistryConfig) == REGISTRY_CONFIG_LEN, "config layout");

#define USER_KIND_PROSUMER 1u
#define USER_KIND_CONSUMER 2u

/* User: PDA ["user", wallet]. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t kind;         /* USER_KIND_* */
  uint32_t meter_count; /* 4: meters registered by this user */
  SolPubkey wallet;     /* 8 */
  int64_t registered_at; /* 40: Clock unix_timestamp */
} User;
#define USER_LEN 48u
_Static_assert(sizeof(User) == USER_LEN, "user layout");

#define METER_STATUS_PENDING 0u        /* registered by its owner, not yet approved */
#define METER_STATUS_ACTIVE 1u         /* readings are settled */
#define METER_STATUS_SUSPENDED 2u      /* temporarily not settled */
#define METER_STATUS_DECOMMISSIONED 3u /* terminal */
#define METER_STATUS_MAX METER_STATUS_DECOMMISSIONED

/* Meter: PDA ["meter", meter_id (16 bytes, NUL padded)]: one account per meter id ever. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t status;      /* METER_STATUS_* */
  uint8_t has_reading; /* 0 until the first reading is accepted */
  uint8_t reserved[3];
  SolPubkey owner;       /* 8: the wallet credited for this meter */
  SolPubkey meter_key;   /* 40: the gateway's Ed25519 device key that signs this meter's readings */
  uint8_t meter_id[16];  /* 72: as in the reading */
  uint64_t last_seq;     /* 88 */
  uint64_t last_timestamp_ms; /* 96 */
  uint64_t last_import_wh;    /* 104 */
  uint64_t last_export_wh;    /* 112 */
  /* 120: highest (export - import) already accounted for: the baseline's net generation from the first
   * accepted reading on, then raised (never lowered) by each later one. 0 before the baseline. */
  int64_t settled_net_generation_wh;
  int64_t registered_at;      /* 128 */
  uint64_t settlement_count;  /* 136: readings accepted, the baseline included */
  /* 144: net generation (export - import) of the baseline, the first accepted reading: what the meter's
   * counters held before it joined. Never minted, never certified; 0 before the baseline. */
  int64_t baseline_net_generation_wh;
  uint64_t baseline_timestamp_ms; /* 152: the baseline reading's timestamp; 0 before the baseline */
} Meter;
#define METER_LEN 160u
_Static_assert(sizeof(Meter) == METER_LEN, "meter layout");
_Static_assert(offsetof(Meter, last_seq) == 88, "meter layout");
_Static_assert(offsetof(Meter, settled_net_generation_wh) == 120, "meter layout");
_Static_assert(offsetof(Meter, baseline_net_generation_wh) == 144, "meter layout");

/* The settled mark a reading of net generation `net` leaves behind: the first accepted reading is the
 * meter's baseline and sets the mark to its own net generation (a real meter arrives with years of
 * cumulative counters, none of it produced under this registry); every later reading raises the mark to
 * `net` when above it. Shared by RecordSettlement and the energy-token program, so both compute the same
 * mark and no caller chooses it. */
static inline int64_t registry_next_mark(const Meter *m, int64_t net) {
  if (m->settlement_count == 0)
    return net;
  return net > m->settled_net_generation_wh ? net : m->settled_net_generation_wh;
}

/* The one instruction other programs call (by CPI, from the settlement authority); see instructions.h. */
#define REGISTRY_IX_RECORD_SETTLEMENT 4
#define REGISTRY_RECORD_SETTLEMENT_LEN 41u

/* Checked loader: owned by this program, exact length, discriminator and version. */
static inline uint64_t registry_load(const SolAccountInfo *a, const SolPubkey *program_id, uint8_t disc,
                                     uint64_t len, void **out) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != len) {
    GTX_LOG_KEY("registry account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != disc || a->data[1] != REGISTRY_VERSION) {
    GTX_LOG_KEY("registry account is of another type or version:", a->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_WRONG_ACCOUNT_TYPE);
  }
  *out = a->data;
  return SUCCESS;
}

/* Seeds (without the bump) of each account type, from the fields the account stores; `parts` must
 * outlive `out`, with one spare entry. */
static inline void registry_config_seeds(SolSignerSeed parts[2], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)CONFIG_SEED;
  parts[0].len = sizeof(CONFIG_SEED) - 1;
  out->addr = parts;
  out->len = 1;
}
static inline void registry_user_seeds(const SolPubkey *wallet, SolSignerSeed parts[3], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)USER_SEED;
  parts[0].len = sizeof(USER_SEED) - 1;
  parts[1].addr = wallet->x;
  parts[1].len = GTX_PUBKEY_LEN;
  out->addr = parts;
  out->len = 2;
}
/* Shared with the energy-token and certificates programs, which check that a meter they are handed is
 * the canonical PDA of the meter id it holds. */
static inline void registry_meter_seeds(const uint8_t meter_id[16], SolSignerSeed parts[3], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)METER_SEED;
  parts[0].len = sizeof(METER_SEED) - 1;
  parts[1].addr = meter_id;
  parts[1].len = 16;
  out->addr = parts;
  out->len = 2;
}

/* Loaders also re-derive the address from the seeds the account stores and its bump (checked canonical
 * at creation): a registry account is always at the canonical PDA of its own fields. */
static inline uint64_t config_load(const SolAccountInfo *a, const SolPubkey *program_id, RegistryConfig **out) {
  GTX_TRY(registry_load(a, program_id, REGISTRY_DISC_CONFIG, REGISTRY_CONFIG_LEN, (void **)out));
  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  registry_config_seeds(parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}
static inline uint64_t user_load(const SolAccountInfo *a, const SolPubkey *program_id, User **out) {
  GTX_TRY(registry_load(a, program_id, REGISTRY_DISC_USER, USER_LEN, (void **)out));
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  registry_user_seeds(&(*out)->wallet, parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}
static inline uint64_t meter_load(const SolAccountInfo *a, const SolPubkey *program_id, Meter **out) {
  GTX_TRY(registry_load(a, program_id, REGISTRY_DISC_METER, METER_LEN, (void **)out));
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  registry_meter_seeds((*out)->meter_id, parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

/* The registry authority's instructions on one meter (SetMeterStatus, SetMeterKey, ReassignMeter):
 * accounts[0] signs and is the config's authority, accounts[1] is the config, accounts[2] the writable
 * meter. The config is owned by this program with the config discriminator: only Initialize creates one,
 * at the PDA. */
static inline uint64_t registry_authority_meter(const GtxInput *in, Meter **meter) {
  const SolAccountInfo *authority = &in->accounts[0];
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(&in->accounts[2]));
  RegistryConfig *config;
  GTX_TRY(config_load(&in->accounts[1], in->program_id, &config));
  GTX_TRY(meter_load(&in->accounts[2], in->program_id, meter));
  if (!gtx_pubkey_eq(&config->authority, authority->key)) {
    GTX_LOG_KEY("signer is not the registry authority:", authority->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_UNAUTHORISED);
  }
  return SUCCESS;
}

/* Create a PDA account of `len` bytes owned by this program, after checking that it is the PDA of
 * `seeds` + `bump`, that `bump` is the canonical one (NonCanonicalBump), and that it does not exist yet.
 * `parts` has room for seeds->len + 1 entries. */
typedef struct {
  const GtxInput *in;
  const SolAccountInfo *payer;
  SolAccountInfo *account; /* data_len is up to date after creation */
  SolSignerSeed *parts; /* seeds->addr, with one spare entry */
  uint64_t seeds_len;
  uint8_t bump;
  uint64_t len;
} RegistryCreate;

static inline uint64_t registry_create_pda(const RegistryCreate *c) {
  SolSignerSeeds seeds = {c->parts, c->seeds_len};
  GTX_TRY(gtx_expect_canonical_pda(c->account, &seeds, c->bump, c->in->program_id,
                                   GTX_CUSTOM_ERROR(REGISTRY_ERROR_NON_CANONICAL_BUMP)));
  if (gtx_pubkey_eq(c->account->owner, c->in->program_id) || c->account->data_len != 0) {
    GTX_LOG_KEY("already registered:", c->account->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_ALREADY_REGISTERED);
  }
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(c->len, &lamports));
  uint8_t bump = c->bump;
  c->parts[c->seeds_len].addr = &bump;
  c->parts[c->seeds_len].len = 1;
  SolSignerSeeds signer = {c->parts, c->seeds_len + 1};
  GtxCreateAccount create = {c->payer, c->account, lamports, c->len, c->in->program_id, &signer};
  return gtx_create_pda(&create);
}

/* Net generation export - import of cumulative counters, as a signed Wh value. ERROR_ARITHMETIC_OVERFLOW
 * if it does not fit an i64 (counters more than 2^63 Wh apart). Shared with the energy-token program,
 * which computes the same mark before it mints. */
static inline uint64_t registry_net_generation(uint64_t import_wh, uint64_t export_wh, int64_t *out) {
  if (export_wh >= import_wh) {
    uint64_t d = export_wh - import_wh;
    if (d > (uint64_t)INT64_MAX)
      return ERROR_ARITHMETIC_OVERFLOW;
    *out = (int64_t)d;
  } else {
    uint64_t d = import_wh - export_wh;
    if (d > (uint64_t)INT64_MAX + 1u)
      return ERROR_ARITHMETIC_OVERFLOW;
    *out = (int64_t)(0 - d);
  }
  return SUCCESS;
}

static inline int64_t registry_now(void) {
  SolClock clock;
  if (sol_get_clock_sysvar(&clock) != 0)
    return 0;
  return clock.unix_timestamp;
}

#endif
