/* Events of the registry program (gtx/events.h header: tag, version; then the fields below, packed,
 * little endian). Layouts: docs/programs.md "Events"; decoders: programs/registry/client.py. */
#ifndef REGISTRY_EVENTS_H
#define REGISTRY_EVENTS_H

#include <gtx_sol.h>

#define REGISTRY_EVENT_VERSION 1u

GTX_EVENT_TAG(RegistryInitialized, 0x7d, 0x0e, 0xb3, 0x9b, 0x0a, 0x15, 0xfe, 0x7e);
GTX_EVENT_TAG(UserRegistered, 0x1e, 0xe8, 0x94, 0x32, 0x91, 0xfd, 0xb1, 0xe5);
GTX_EVENT_TAG(MeterRegistered, 0x2b, 0xf3, 0x9e, 0x5a, 0x2e, 0x15, 0xa1, 0x32);
GTX_EVENT_TAG(MeterStatusChanged, 0x58, 0xfe, 0xaf, 0x07, 0x3f, 0xaf, 0xdf, 0xd6);
GTX_EVENT_TAG(MeterKeyChanged, 0x01, 0x2f, 0x8b, 0x0e, 0x02, 0x7f, 0x56, 0x23);
GTX_EVENT_TAG(MeterReassigned, 0xa4, 0x52, 0xa4, 0x18, 0xf4, 0x3e, 0x92, 0xde);
GTX_EVENT_TAG(SettlementRecorded, 0xd6, 0x63, 0x33, 0xc8, 0x82, 0xec, 0x26, 0x3c);

/* Initialize: the config and its two authorities. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey config;
  SolPubkey authority;
  SolPubkey settlement_authority;
} RegistryInitializedEvent;
_Static_assert(sizeof(RegistryInitializedEvent) == 105, "RegistryInitialized layout");

/* RegisterUser. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey wallet;
  SolPubkey user; /* the user PDA */
  uint8_t kind;   /* 1 prosumer, 2 consumer */
  int64_t registered_at;
} UserRegisteredEvent;
_Static_assert(sizeof(UserRegisteredEvent) == 82, "UserRegistered layout");

/* RegisterMeter: status Pending. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter; /* the meter PDA */
  uint8_t meter_id[16];
  SolPubkey owner;
  SolPubkey meter_key;
  int64_t registered_at;
} MeterRegisteredEvent;
_Static_assert(sizeof(MeterRegisteredEvent) == 129, "MeterRegistered layout");

/* SetMeterStatus. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey owner;
  uint8_t previous_status;
  uint8_t status;
} MeterStatusChangedEvent;
_Static_assert(sizeof(MeterStatusChangedEvent) == 91, "MeterStatusChanged layout");

/* SetMeterKey: also clears the sequence / timestamp history (the next reading may have any seq). */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey owner;
  SolPubkey previous_key;
  SolPubkey meter_key;
} MeterKeyChangedEvent;
_Static_assert(sizeof(MeterKeyChangedEvent) == 153, "MeterKeyChanged layout");

/* ReassignMeter: new owner and key, status Pending. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey previous_owner;
  SolPubkey owner;
  SolPubkey meter_key;
  uint8_t previous_status;
  uint8_t status;
} MeterReassignedEvent;
_Static_assert(sizeof(MeterReassignedEvent) == 155, "MeterReassigned layout");

/* RecordSettlement (by CPI from the energy token): the meter's new last reading and mark. A baseline is
 * the reading with settlement_count 1. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey owner;
  uint64_t seq;
  uint64_t timestamp_ms;
  uint64_t import_wh;
  uint64_t export_wh;
  int64_t settled_net_generation_wh;
  int64_t baseline_net_generation_wh;
  uint64_t settlement_count;
} SettlementRecordedEvent;
_Static_assert(sizeof(SettlementRecordedEvent) == 145, "SettlementRecorded layout");

#endif
