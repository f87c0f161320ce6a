#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_set_meter_key(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *meter = &in->accounts[2];
  if (in->data_len != 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("set_meter_key: data must be [5, meter_key[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *key = in->data + 1;
  Meter *m;
  GTX_TRY(registry_authority_meter(in, &m));
  if (m->status == METER_STATUS_DECOMMISSIONED) {
    GTX_LOG_KEY("set_meter_key: meter is decommissioned:", meter->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_METER_DECOMMISSIONED);
  }
  if (gtx_memeq(m->meter_key.x, key, GTX_PUBKEY_LEN)) {
    GTX_LOG("set_meter_key: this key is already registered");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_SAME_METER_KEY);
  }
  MeterKeyChangedEvent e;
  gtx_event_header(&e.header, GTX_TAG_MeterKeyChanged, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, m->meter_id, 16);
  gtx_memcpy(&e.owner, &m->owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.previous_key, &m->meter_key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.meter_key, key, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->meter_key, key, GTX_PUBKEY_LEN);
  /* The new gateway's sequence numbers start afresh; counters, mark, baseline and settlement count stay
   * (the same physical meter: its next reading continues from the mark, it is no new baseline). */
  m->has_reading = 0;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
