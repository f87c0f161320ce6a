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
    GTX_LOG("initialize: data must be [0, config_bump, authority_bump, operator[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t config_bump = in->data[1], authority_bump = in->data[2];
  GTX_TRY(expect_writable(admin));
  GTX_TRY(expect_writable(config));
  GTX_TRY(gtx_expect_upgrade_authority(&in->accounts[3], admin, in->program_id));
  GTX_TRY(expect_program(&in->accounts[4], &GTX_SYSTEM_PROGRAM_ID));

  SolSignerSeed auth_seed = {(const uint8_t *)PAYMENTS_AUTHORITY_SEED, sizeof(PAYMENTS_AUTHORITY_SEED) - 1};
  SolSignerSeeds auth_seeds = {&auth_seed, 1};
  SolPubkey authority;
  GTX_TRY(gtx_canonical_pda(&auth_seeds, authority_bump, in->program_id, &authority,
                            GTX_CUSTOM_ERROR(PAYMENTS_ERROR_NON_CANONICAL_BUMP)));
  GtxMint m;
  GTX_TRY(gtx_mint_load(mint, &m));
  if (!m.has_mint_authority || !gtx_pubkey_eq(m.mint_authority, &authority)) {
    GTX_LOG_KEY("initialize: THBC's mint authority must be this program's PDA:", mint->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_MINT_AUTHORITY);
  }
  if (m.decimals != THBC_DECIMALS) {
    GTX_LOG("initialize: THBC has 6 decimals");
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_DECIMALS);
  }
  /* A freeze authority and an existing supply are allowed: THBC may predate this program (its mint
   * authority moved here with SetAuthority), and a compliance freeze authority is the issuer's choice. */

  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  payments_config_seeds(parts, &seeds);
  GTX_TRY(gtx_expect_canonical_pda(config, &seeds, config_bump, in->program_id,
                                   GTX_CUSTOM_ERROR(PAYMENTS_ERROR_NON_CANONICAL_BUMP)));
  if (gtx_pubkey_eq(config->owner, in->program_id) || config->data_len != 0) {
    GTX_LOG_KEY("initialize: config exists already:", config->key);
    return ERROR_ACCOUNT_ALREADY_INITIALIZED;
  }
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(PAYMENTS_CONFIG_LEN, &lamports));
  parts[1].addr = &config_bump;
  parts[1].len = 1;
  SolSignerSeeds signer = {parts, 2};
  GtxCreateAccount create = {admin, config, lamports, PAYMENTS_CONFIG_LEN, in->program_id, &signer};
  GTX_TRY(gtx_create_pda(&create));

  PaymentsConfig *c = (PaymentsConfig *)config->data;
  c->discriminator = PAYMENTS_DISC_CONFIG;
  c->version = PAYMENTS_VERSION;
  c->bump = config_bump;
  c->authority_bump = authority_bump;
  gtx_memcpy(&c->authority, admin->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->operator_, in->data + 3, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->mint, mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->mint_authority, &authority, GTX_PUBKEY_LEN);
  PaymentsInitializedEvent e;
  gtx_event_header(&e.header, GTX_TAG_PaymentsInitialized, PAYMENTS_EVENT_VERSION);
  gtx_memcpy(&e.config, config->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, admin->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.operator_, &c->operator_, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.mint, mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.mint_authority, &authority, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
