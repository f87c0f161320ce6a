#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_set_operator(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  const SolAccountInfo *authority = &in->accounts[0];
  const SolAccountInfo *config = &in->accounts[1];
  if (in->data_len != 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("set_operator: data must be [3, operator[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(config));
  PaymentsConfig *c;
  GTX_TRY(payments_config_load(config, in->program_id, &c));
  if (!gtx_pubkey_eq(authority->key, &c->authority)) {
    GTX_LOG_KEY("set_operator: signer is not the config authority:", authority->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_NOT_AUTHORITY);
  }
  OperatorChangedEvent e;
  gtx_event_header(&e.header, GTX_TAG_OperatorChanged, PAYMENTS_EVENT_VERSION);
  gtx_memcpy(&e.config, config->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.previous_operator, &c->operator_, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.operator_, in->data + 1, GTX_PUBKEY_LEN);
  gtx_memcpy(&c->operator_, in->data + 1, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
