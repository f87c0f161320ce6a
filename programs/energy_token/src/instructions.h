/* Instructions of the energy-token program: 1-byte discriminator, then the data below. The Python
 * builders are in programs/energy_token/client.py; accounts are listed in order with [writable, signer].
 * Integers are little-endian. */
#ifndef ENERGY_TOKEN_INSTRUCTIONS_H
#define ENERGY_TOKEN_INSTRUCTIONS_H

#include <gtx_sol.h>

#define ENERGY_MAX_ACCOUNTS 9

/* 0 Initialize: pin the registry program and the GRID mint; only the upgrade authority may.
 *   The mint must already exist: 9 decimals, supply 0, mint authority = PDA ["authority"], no freeze
 *   authority.
 *   accounts: 0 admin [w, s] (upgrade authority, pays), 1 config [w] (PDA ["config"]), 2 GRID mint [],
 *             3 programdata [] (this program's ProgramData), 4 System program
 *   data:     [0] disc, [1] config bump, [2] authority bump, [3..35] registry program id */
#define ENERGY_IX_INITIALIZE 0
uint64_t process_initialize(const GtxInput *in);

/* 1 SettleAndMint: credit one signed meter reading. Anyone may send it (the reading's Ed25519
 *   signature, checked by the precompile in the same transaction, is the authorisation).
 *   accounts: 0 config [], 1 meter [w] (registry meter PDA), 2 owner's GRID token account [w],
 *             3 GRID mint [w], 4 authority [] (PDA ["authority"]), 5 registry config [],
 *             6 registry program, 7 Token program, 8 Instructions sysvar
 *   data:     [0] disc, [1..61] the 60-byte signed reading (docs/reading-format.md) */
#define ENERGY_IX_SETTLE_AND_MINT 1
uint64_t process_settle_and_mint(const GtxInput *in);

/* 2 Consume: the holder burns GRID it consumed (energy used from the grid pays back the tokens that stand
 *   for it; tokens end burned or retired). Logs GridConsumed.
 *   accounts: 0 holder [s], 1 holder's GRID token account [w], 2 GRID mint [w], 3 config [], 4 Token program
 *   data:     [0] disc, [1..9] amount u64 (GRID base units) */
#define ENERGY_IX_CONSUME 2
uint64_t process_consume(const GtxInput *in);

#endif
