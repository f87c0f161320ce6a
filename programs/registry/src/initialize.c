#include <gtx_sol.h>
#include <gtx/upgradeable.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_initialize(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 4));
  const SolAccountInfo *authority = &in->accounts[0];
  SolAccountInfo *config = &in->accounts[1];
  if (in->data_len != 2 + GTX_PUBKEY_LEN) {
    GTX_LOG("initialize: data must be [0, bump, settlement_authority[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_writable(authority));
  GTX_TRY(expect_writable(config));
  GTX_TRY(gtx_expect_upgrade_authority(&in->accounts[2], authority, in->program_id));
  GTX_TRY(expect_program(&in->accounts[3], &GTX_SYSTEM_PROGRAM_ID));

  SolSignerSeed parts[2];
  SolSignerSeeds unused;
  registry_config_seeds(parts, &unused);
  RegistryCreate create = {in, authority, config, parts, 1, in->data[1], REGISTRY_CONFIG_LEN};
  GTX_TRY(registry_create_pda(&create));

  RegistryConfig *c = (RegistryConfig *)config->data;
  c->discriminator = REGISTRY_DISC_CONFIG;
  c->version = REGISTRY_VERSION;
  c->bump = in->data[1];
  gtx_memcpy(&c->authority, authority->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->settlement_authority, in->data + 2, GTX_PUBKEY_LEN);
  RegistryInitializedEvent e;
  gtx_event_header(&e.header, GTX_TAG_RegistryInitialized, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.config, config->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, &c->authority, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.settlement_authority, &c->settlement_authority, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
