#include <gtx_sol.h>
#include <gtx/upgradeable.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_initialize(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 4));
  const SolAccountInfo *admin = &in->accounts[0];
  SolAccountInfo *config = &in->accounts[1];
  if (in->data_len != 2 + 2 * GTX_PUBKEY_LEN + 8) {
    GTX_LOG("initialize: data must be [0, bump, governance[32], registry[32], validity i64]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  int64_t validity = (int64_t)gtx_load_u64_le(in->data + 2 + 2 * GTX_PUBKEY_LEN);
  GTX_TRY(expect_writable(admin));
  GTX_TRY(expect_writable(config));
  GTX_TRY(gtx_expect_upgrade_authority(&in->accounts[2], admin, in->program_id));
  GTX_TRY(expect_program(&in->accounts[3], &GTX_SYSTEM_PROGRAM_ID));
  if (validity <= 0) {
    GTX_LOG("initialize: validity must be positive");
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_VALIDITY);
  }
  SolSignerSeed parts[2] = {{(const uint8_t *)CERT_CONFIG_SEED, sizeof(CERT_CONFIG_SEED) - 1}, {0, 0}};
  CertCreate create = {in, admin, config, parts, 1, in->data[1], CERT_CONFIG_LEN};
  GTX_TRY(cert_create_pda(&create));
  CertConfig *c = (CertConfig *)config->data;
  c->discriminator = CERT_DISC_CONFIG;
  c->version = CERT_VERSION;
  c->bump = in->data[1];
  gtx_memcpy(&c->governance, in->data + 2, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->registry_program, in->data + 2 + GTX_PUBKEY_LEN, GTX_PUBKEY_LEN);
  c->validity_seconds = validity;
  CertificatesInitializedEvent e;
  gtx_event_header(&e.header, GTX_TAG_CertificatesInitialized, CERT_EVENT_VERSION);
  gtx_memcpy(&e.config, config->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.governance, &c->governance, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.registry_program, &c->registry_program, GTX_PUBKEY_LEN);
  e.validity_seconds = validity;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
