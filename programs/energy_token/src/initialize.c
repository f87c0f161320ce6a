#include <gtx_sol.h>
#include <gtx/create_pda.h>
#include <gtx/token.h>
#include <gtx/upgradeable.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_initialize(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *admin = &in->accounts[0];
  SolAccountInfo *config = &in->accounts[1];
  const SolAccountInfo *mint = &in->accounts[2];
  if (in->data_len != 3 + GTX_PUBKEY_LEN) {
    GTX_LOG("initialize: data must be [0, config_bump, authority_bump, registry_program[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t config_bump = in->data[1], authority_bump = in->data[2];
  GTX_TRY(expect_writable(admin));
  GTX_TRY(expect_writable(config));
  GTX_TRY(gtx_expect_upgrade_authority(&in->accounts[3], admin, in->program_id));
  GTX_TRY(expect_program(&in->accounts[4], &GTX_SYSTEM_PROGRAM_ID));

  SolSignerSeed auth_seed = {(const uint8_t *)ENERGY_AUTHORITY_SEED, sizeof(ENERGY_AUTHORITY_SEED) - 1};
  SolSignerSeeds auth_seeds = {&auth_seed, 1};
  SolPubkey authority;
  GTX_TRY(gtx_canonical_pda(&auth_seeds, authority_bump, in->program_id, &authority,
                            GTX_CUSTOM_ERROR(ENERGY_ERROR_NON_CANONICAL_BUMP)));

  GtxMint m;
  GTX_TRY(gtx_mint_load(mint, &m));
  if (!m.has_mint_authority || !gtx_pubkey_eq(m.mint_authority, &authority)) {
    GTX_LOG_KEY("initialize: the mint's authority must be this program's PDA:", mint->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_MINT_AUTHORITY);
  }
  if (m.decimals != GRID_DECIMALS) {
    GTX_LOG("initialize: GRID has 9 decimals");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_DECIMALS);
  }
  if (m.has_freeze_authority) {
    GTX_LOG("initialize: GRID must have no freeze authority");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_MINT_HAS_FREEZE_AUTHORITY);
  }
  if (m.supply != 0) {
    GTX_LOG("initialize: GRID mint must be fresh (supply 0)");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_MINT_SUPPLY_NOT_ZERO);
  }

  SolSignerSeed parts[2] = {{(const uint8_t *)ENERGY_CONFIG_SEED, sizeof(ENERGY_CONFIG_SEED) - 1}, {0, 0}};
  SolSignerSeeds seeds = {parts, 1};
  GTX_TRY(gtx_expect_canonical_pda(config, &seeds, config_bump, in->program_id,
                                   GTX_CUSTOM_ERROR(ENERGY_ERROR_NON_CANONICAL_BUMP)));
  if (gtx_pubkey_eq(config->owner, in->program_id) || config->data_len != 0) {
    GTX_LOG_KEY("initialize: config exists already:", config->key);
    return ERROR_ACCOUNT_ALREADY_INITIALIZED;
  }
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(ENERGY_CONFIG_LEN, &lamports));
  parts[1].addr = &config_bump;
  parts[1].len = 1;
  SolSignerSeeds signer = {parts, 2};
  GtxCreateAccount create = {admin, config, lamports, ENERGY_CONFIG_LEN, in->program_id, &signer};
  GTX_TRY(gtx_create_pda(&create));

  EnergyConfig *c = (EnergyConfig *)config->data;
  c->discriminator = ENERGY_DISC_CONFIG;
  c->version = ENERGY_VERSION;
  c->bump = config_bump;
  c->authority_bump = authority_bump;
  gtx_memcpy(&c->registry_program, in->data + 3, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->mint, mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->authority, &authority, GTX_PUBKEY_LEN);
  EnergyTokenInitializedEvent e;
  gtx_event_header(&e.header, GTX_TAG_EnergyTokenInitialized, ENERGY_EVENT_VERSION);
  gtx_memcpy(&e.config, config->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.registry_program, &c->registry_program, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.mint, mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, &authority, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
