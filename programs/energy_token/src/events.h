/* Events of the energy-token program (gtx/events.h header: tag, version; then the fields below, packed,
 * little endian). Layouts: docs/programs.md "Events"; decoders: programs/energy_token/client.py. */
#ifndef ENERGY_TOKEN_EVENTS_H
#define ENERGY_TOKEN_EVENTS_H

#include <gtx_sol.h>

#define ENERGY_EVENT_VERSION 1u

GTX_EVENT_TAG(EnergyTokenInitialized, 0x95, 0x41, 0xec, 0x3a, 0x5d, 0x41, 0xa3, 0x9a);
GTX_EVENT_TAG(BaselineRecorded, 0x68, 0x3a, 0x66, 0x3b, 0x3f, 0x88, 0x19, 0xc0);
GTX_EVENT_TAG(GridConsumed, 0x48, 0x1b, 0xd9, 0xf3, 0x72, 0xca, 0x67, 0x5d);
GTX_EVENT_TAG(GridMinted, 0x98, 0x81, 0x43, 0xa2, 0xf9, 0x3e, 0x6e, 0x1a);

/* Initialize: the trust roots. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey config;
  SolPubkey registry_program;
  SolPubkey mint;
  SolPubkey authority;
} EnergyTokenInitializedEvent;
_Static_assert(sizeof(EnergyTokenInitializedEvent) == 137, "EnergyTokenInitialized layout");

/* SettleAndMint of a meter's first reading: recorded as its baseline, nothing minted. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey owner;
  uint64_t seq;
  uint64_t timestamp_ms;
  uint64_t import_wh;
  uint64_t export_wh;
  int64_t baseline_net_generation_wh; /* export - import: the settled mark from now on */
} BaselineRecordedEvent;
_Static_assert(sizeof(BaselineRecordedEvent) == 129, "BaselineRecorded layout");

/* SettleAndMint of any later reading: `amount` GRID base units minted to `destination` (0 when the net
 * generation is not above the previous mark: the reading is still recorded). */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey meter;
  uint8_t meter_id[16];
  SolPubkey owner;
  SolPubkey destination;
  uint64_t seq;
  uint64_t timestamp_ms;
  uint64_t import_wh;
  uint64_t export_wh;
  int64_t previous_mark;
  int64_t mark;
  uint64_t amount;
} GridMintedEvent;
_Static_assert(sizeof(GridMintedEvent) == 177, "GridMinted layout");

/* Consume: the holder burned `amount` GRID it consumed (tokens end burned or retired). */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey holder;
  SolPubkey account; /* the GRID token account burned from */
  uint64_t amount;
  uint64_t balance;  /* the account's balance after the burn */
  int64_t timestamp;
} GridConsumedEvent;
_Static_assert(sizeof(GridConsumedEvent) == 97, "GridConsumed layout");

#endif
