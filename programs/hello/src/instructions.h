/* Instructions of the hello program: 1-byte discriminator, then the data below. The Python builders are
 * in programs/hello/client.py; accounts are listed in order with [writable, signer]. */
#ifndef HELLO_INSTRUCTIONS_H
#define HELLO_INSTRUCTIONS_H

#include <gtx_sol.h>

#define HELLO_MAX_ACCOUNTS 4

/* 0 Initialize: create the caller's greeting PDA through a PDA-signed System program CPI.
 *   accounts: 0 authority [w, s] (pays), 1 greeting [w] (PDA ["greeting", authority]), 2 System program
 *   data:     [0] disc, [1] bump */
#define HELLO_IX_INITIALIZE 0
uint64_t process_initialize(const GtxInput *in);

/* 1 Greet: count a greeting and add `amount` to the total (checked), log it and emit an event.
 *   accounts: 0 authority [s], 1 greeting [w]
 *   data:     [0] disc, [1..9] amount u64 LE */
#define HELLO_IX_GREET 1
uint64_t process_greet(const GtxInput *in);

/* 2 VerifySignature: succeed only if an Ed25519 precompile instruction in this transaction verified
 *   `pubkey` over `message` (exercises gtx_find_ed25519_verification).
 *   accounts: 0 Instructions sysvar
 *   data:     [0] disc, [1..33] pubkey, [33..] message */
#define HELLO_IX_VERIFY_SIGNATURE 2
uint64_t process_verify_signature(const GtxInput *in);

#endif
