/* Instructions of the registry program: 1-byte discriminator, then the data below. The Python builders
 * are in programs/registry/client.py; accounts are listed in order with [writable, signer].
 * Integers are little-endian. */
#ifndef REGISTRY_INSTRUCTIONS_H
#define REGISTRY_INSTRUCTIONS_H

#include <gtx_sol.h>

#include "state.h"

#define REGISTRY_MAX_ACCOUNTS 5

/* 0 Initialize: create the config PDA; only the program's upgrade authority may.
 *   accounts: 0 authority [w, s] (pays; becomes the config authority), 1 config [w] (PDA ["config"]),
 *             2 programdata [] (this program's ProgramData), 3 System program
 *   data:     [0] disc, [1] config bump, [2..34] settlement authority */
#define REGISTRY_IX_INITIALIZE 0
uint64_t process_initialize(const GtxInput *in);

/* 1 RegisterUser: create the wallet's user PDA.
 *   accounts: 0 wallet [w, s] (pays), 1 user [w] (PDA ["user", wallet]), 2 System program
 *   data:     [0] disc, [1] user bump, [2] kind (1 prosumer, 2 consumer) */
#define REGISTRY_IX_REGISTER_USER 1
uint64_t process_register_user(const GtxInput *in);

/* 2 RegisterMeter: create a meter PDA (status Pending) owned by a registered user.
 *   accounts: 0 owner [w, s] (pays), 1 user [w] (owner's user PDA), 2 meter [w] (PDA ["meter", meter_id]),
 *             3 System program
 *   data:     [0] disc, [1] meter bump, [2..18] meter id (NUL padded), [18..50] meter Ed25519 key */
#define REGISTRY_IX_REGISTER_METER 2
uint64_t process_register_meter(const GtxInput *in);

/* 3 SetMeterStatus: the config authority moves a meter between Pending/Active/Suspended/Decommissioned.
 *   accounts: 0 authority [s], 1 config [], 2 meter [w]
 *   data:     [0] disc, [1] new status */
#define REGISTRY_IX_SET_METER_STATUS 3
uint64_t process_set_meter_status(const GtxInput *in);

/* 4 RecordSettlement: the settlement authority (the energy-token program's PDA, by CPI) stores an
 *   accepted reading and the new settled mark. Re-checks what the caller checked: meter Active,
 *   sequence and timestamp newer, counters not going backwards, and the mark: for the meter's first
 *   accepted reading (settlement_count 0, its baseline) exactly that reading's export - import, which is
 *   also stored as baseline_net_generation_wh; afterwards max(previous mark, export - import). The
 *   caller cannot choose it.
 *   accounts: 0 settlement authority [s], 1 config [], 2 meter [w]
 *   data:     [0] disc, [1..9] seq, [9..17] timestamp_ms, [17..25] import_wh, [25..33] export_wh,
 *             [33..41] settled_net_generation_wh (i64) */
/* REGISTRY_IX_RECORD_SETTLEMENT and REGISTRY_RECORD_SETTLEMENT_LEN are in state.h: the energy-token
 * program builds this instruction by CPI and includes that header. */
uint64_t process_record_settlement(const GtxInput *in);

/* 5 SetMeterKey: the config authority replaces a meter's Ed25519 key (gateway replaced or key lost).
 *   The new gateway numbers its readings afresh, so the sequence / timestamp history is cleared
 *   (has_reading = 0); the counters, the settled mark, the baseline and settlement_count stay, so
 *   nothing already credited can be credited again and the new gateway's first reading is no new
 *   baseline: it mints what the meter generated above the mark meanwhile. Readings signed by the old
 *   key no longer verify.
 *   accounts: 0 authority [s], 1 config [], 2 meter [w]
 *   data:     [0] disc, [1..33] new meter key */
#define REGISTRY_IX_SET_METER_KEY 5
uint64_t process_set_meter_key(const GtxInput *in);

/* 6 ReassignMeter: the config authority gives a meter id that was registered by the wrong party (never
 *   settled: no reading accepted, mark 0) to its rightful owner with that owner's gateway key. Status
 *   becomes Pending. A meter with settlement history is never reassigned: its marks belong to its owner.
 *   accounts: 0 authority [s], 1 config [], 2 meter [w], 3 current owner's user [w], 4 new owner's user [w]
 *   data:     [0] disc, [1..33] new meter key */
#define REGISTRY_IX_REASSIGN_METER 6
uint64_t process_reassign_meter(const GtxInput *in);

#endif
