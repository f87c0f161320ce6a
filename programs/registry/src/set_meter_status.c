#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_set_meter_status(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *meter = &in->accounts[2];
  if (in->data_len != 2) {
    GTX_LOG("set_meter_status: data must be [3, status]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t status = in->data[1];
  Meter *m;
  GTX_TRY(registry_authority_meter(in, &m));
  if (status > METER_STATUS_MAX || status == m->status) {
    GTX_LOG("set_meter_status: status out of range or unchanged");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_INVALID_STATUS);
  }
  if (m->status == METER_STATUS_DECOMMISSIONED) {
    GTX_LOG_KEY("set_meter_status: meter is decommissioned:", meter->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_METER_DECOMMISSIONED);
  }
  MeterStatusChangedEvent e;
  gtx_event_header(&e.header, GTX_TAG_MeterStatusChanged, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, m->meter_id, 16);
  gtx_memcpy(&e.owner, &m->owner, GTX_PUBKEY_LEN);
  e.previous_status = m->status;
  e.status = status;
  m->status = status;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
