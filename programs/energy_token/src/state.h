/* Account state of the energy-token program, and the registry meter layout it reads (one definition:
 * programs/registry/src/state.h). */
#ifndef ENERGY_TOKEN_STATE_H
#define ENERGY_TOKEN_STATE_H

#include <gtx_sol.h>

#include "../../registry/src/state.h"
#include "error.h"

#define ENERGY_DISC_CONFIG 0x20u
/* Version 2: the config sits at the canonical PDA ["config"] and names the canonical authority PDA. */
#define ENERGY_VERSION 2u
#define ENERGY_CONFIG_SEED "config"
/* The program's one authority PDA: GRID's mint authority and the registry's settlement authority. */
#define ENERGY_AUTHORITY_SEED "authority"

#define GRID_DECIMALS 9u
/* 1 kWh = 1 GRID = 10^9 base units, so 1 Wh = 10^6 base units exactly. */
#define GRID_BASE_UNITS_PER_WH 1000000ull

/* Config: PDA ["config"], written once by Initialize. Never written afterwards, so settlements of
 * different meters do not contend for a write lock on it. */
typedef struct {
  uint8_t discriminator;
  uint8_t version;
  uint8_t bump;
  uint8_t authority_bump;
  uint8_t reserved[4];
  SolPubkey registry_program; /* 8: the registry whose meters are settled */
  SolPubkey mint;             /* 40: the GRID mint */
  SolPubkey authority;        /* 72: PDA ["authority"] (stored so settlement compares, not derives) */
} EnergyConfig;
#define ENERGY_CONFIG_LEN 104u
_Static_assert(sizeof(EnergyConfig) == ENERGY_CONFIG_LEN, "config layout");

static inline uint64_t energy_config_load(const SolAccountInfo *a, const SolPubkey *program_id, EnergyConfig **out) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != ENERGY_CONFIG_LEN) {
    GTX_LOG_KEY("energy-token config has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != ENERGY_DISC_CONFIG || a->data[1] != ENERGY_VERSION) {
    GTX_LOG_KEY("not an energy-token config:", a->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_ACCOUNT_TYPE);
  }
  *out = (EnergyConfig *)a->data;
  /* The one config: the canonical PDA ["config"] (bump checked canonical by Initialize). */
  SolSignerSeed seed = {(const uint8_t *)ENERGY_CONFIG_SEED, sizeof(ENERGY_CONFIG_SEED) - 1};
  SolSignerSeeds seeds = {&seed, 1};
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

/* A registry meter: owned by the configured registry program, the registry's meter size, discriminator
 * and version, and at the CANONICAL PDA ["meter", meter id] of the id it holds (NonCanonicalBump): one
 * meter id can mint through one account only, whatever the registry let exist. */
static inline uint64_t energy_meter_load(const SolAccountInfo *a, const EnergyConfig *c, const Meter **out) {
  if (!gtx_pubkey_eq(a->owner, &c->registry_program)) {
    GTX_LOG_KEY("meter account not owned by the configured registry:", a->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_REGISTRY);
  }
  if (a->data_len != METER_LEN) {
    GTX_LOG_KEY("meter account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != REGISTRY_DISC_METER || a->data[1] != REGISTRY_VERSION) {
    GTX_LOG_KEY("not a registry meter account:", a->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_ACCOUNT_TYPE);
  }
  const Meter *m = (const Meter *)a->data;
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  registry_meter_seeds(m->meter_id, parts, &seeds);
  GTX_TRY(gtx_expect_canonical_pda(a, &seeds, m->bump, &c->registry_program,
                                   GTX_CUSTOM_ERROR(ENERGY_ERROR_NON_CANONICAL_BUMP)));
  *out = m;
  return SUCCESS;
}

#endif
