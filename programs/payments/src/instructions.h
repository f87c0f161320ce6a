/* Instructions of the payments program: 1-byte discriminator, then the data below (little endian).
 * Accounts in order with [writable, signer]. The Python builders are in programs/payments/client.py;
 * the full reference is docs/programs/payments.md.
 *
 * THBC's mint authority is this program's PDA ["authority"], so THBC is created only by Issue: signed by
 * the payment operator named in the config, against a fiat deposit reference that can be used once (its
 * deposit record PDA ["deposit", reference] is created by the Issue). Redeem burns a holder's THBC. */
#ifndef PAYMENTS_INSTRUCTIONS_H
#define PAYMENTS_INSTRUCTIONS_H

#include <gtx_sol.h>

#define PAYMENTS_MAX_ACCOUNTS 8

/* 0 Initialize: create the config; only the program's upgrade authority may (it becomes the config
 *   authority, which may replace the operator). THBC must exist with 6 decimals and this program's
 *   PDA ["authority"] as its mint authority.
 *   accounts: 0 admin [w, s] (pays), 1 config [w] (PDA ["config"]), 2 THBC mint [], 3 programdata [],
 *             4 System program
 *   data:     [0] disc, [1] config bump, [2] authority bump (both canonical), [3..35] payment operator */
#define PAYMENTS_IX_INITIALIZE 0
uint64_t process_initialize(const GtxInput *in);

/* 1 Issue: the payment operator mints `amount` THBC to a THBC account for a confirmed fiat deposit. The
 *   deposit record ["deposit", reference] is created here, so each reference is issued once
 *   (ReferenceAlreadyUsed).
 *   accounts: 0 operator [w, s] (pays the record's rent), 1 config [], 2 deposit [w], 3 THBC mint [w],
 *             4 destination THBC account [w], 5 authority [] (PDA ["authority"]), 6 Token program,
 *             7 System program
 *   data:     [0] disc, [1..33] deposit reference, [33..41] amount u64, [41] deposit bump (canonical) */
#define PAYMENTS_IX_ISSUE 1
uint64_t process_issue(const GtxInput *in);

/* 2 Redeem: the holder burns `amount` THBC for a fiat payout identified by `payout_reference`.
 *   accounts: 0 holder [s], 1 holder's THBC account [w], 2 THBC mint [w], 3 config [], 4 Token program
 *   data:     [0] disc, [1..9] amount u64, [9..41] payout reference */
#define PAYMENTS_IX_REDEEM 2
uint64_t process_redeem(const GtxInput *in);

/* 3 SetOperator: the config authority replaces the payment operator (a key rotation, or a compromise).
 *   accounts: 0 authority [s], 1 config [w]
 *   data:     [0] disc, [1..33] new operator */
#define PAYMENTS_IX_SET_OPERATOR 3
uint64_t process_set_operator(const GtxInput *in);

#endif
