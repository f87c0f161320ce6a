/* Instructions of the certificates program (energy attribute certificates, ERC): 1-byte discriminator,
 * then the data below. The Python builders are in programs/certificates/client.py; accounts are listed
 * in order with [writable, signer]. Integers are little-endian.
 *
 * Lifecycle: Issue -> Pending; Validate -> Valid; Retire -> Retired (consumed); Revoke -> Revoked
 * (reason code); Expire -> Expired once expires_at has passed. A meter's mark only moves forward, so
 * the same settled generation is never certified twice, whatever later happens to a certificate. */
#ifndef CERTIFICATES_INSTRUCTIONS_H
#define CERTIFICATES_INSTRUCTIONS_H

#include <gtx_sol.h>

#define CERT_MAX_ACCOUNTS 6

/* 0 Initialize: create the config; only the program's upgrade authority may.
 *   accounts: 0 admin [w, s] (pays), 1 config [w] (PDA ["config"]), 2 programdata [], 3 System program
 *   data:     [0] disc, [1] bump, [2..34] governance, [34..66] registry program, [66..74] validity s i64 */
#define CERT_IX_INITIALIZE 0
uint64_t process_initialize(const GtxInput *in);

/* 1 Issue: the meter's owner certifies settled net generation [certified_up_to_wh, to_wh) (Pending).
 *   Positions are Wh above the meter's baseline (its first accepted reading): to_wh is at most
 *   settled_net_generation_wh - baseline_net_generation_wh, so what the counters held before the meter
 *   joined is never certified.
 *   Creates the meter's mark on first use.
 *   accounts: 0 owner [w, s] (pays), 1 config [], 2 meter [] (registry meter), 3 mark [w]
 *             (PDA ["mark", meter]), 4 certificate [w] (PDA ["cert", meter, mark.next_index]),
 *             5 System program
 *   data:     [0] disc, [1] mark bump, [2] certificate bump, [3..11] to_wh u64 */
#define CERT_IX_ISSUE 1
uint64_t process_issue(const GtxInput *in);

/* 2 Validate: governance approves a Pending, unexpired certificate (Valid).
 *   accounts: 0 governance [s], 1 config [], 2 certificate [w]
 *   data:     [0] disc */
#define CERT_IX_VALIDATE 2
uint64_t process_validate(const GtxInput *in);

/* 3 Retire: the holder consumes a Valid, unexpired certificate (claimed, or delivered after a trade).
 *   accounts: 0 holder [s], 1 certificate [w]
 *   data:     [0] disc */
#define CERT_IX_RETIRE 3
uint64_t process_retire(const GtxInput *in);

/* 4 Revoke: governance withdraws a Pending or Valid certificate with a reason code.
 *   accounts: 0 governance [s], 1 config [], 2 certificate [w]
 *   data:     [0] disc, [1..3] reason u16 (non-zero) */
#define CERT_IX_REVOKE 4
uint64_t process_revoke(const GtxInput *in);

/* 5 Expire: anyone marks a Pending or Valid certificate Expired once its validity has ended.
 *   accounts: 0 certificate [w]
 *   data:     [0] disc */
#define CERT_IX_EXPIRE 5
uint64_t process_expire(const GtxInput *in);

/* 6 Transfer: the holder hands a Valid, unexpired certificate to a new holder (a trade).
 *   accounts: 0 holder [s], 1 certificate [w]
 *   data:     [0] disc, [1..33] new holder */
#define CERT_IX_TRANSFER 6
uint64_t process_transfer(const GtxInput *in);

#endif
