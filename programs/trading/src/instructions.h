/* Instructions of the trading program: a 1-byte discriminator, then the data below (little endian).
 * Accounts are listed in order with [w] writable and [s] signer. The Python builders are in
 * programs/trading/client.py; the full reference is docs/programs/trading.md. */
#ifndef TRADING_INSTRUCTIONS_H
#define TRADING_INSTRUCTIONS_H

#include <gtx_sol.h>

#define TRADING_MAX_ACCOUNTS 10

/* 0 InitializeMarket: create the market PDA ["market"] with its mints, fee account and fee. Only the
 * program's upgrade authority may (else anyone could front-run a fresh deployment and pick the fee
 * account); it becomes the market authority.
 *   accounts: 0 authority [w, s] (pays), 1 market [w], 2 GRID mint, 3 THBC mint, 4 fee account (THBC
 *             token account), 5 this program's ProgramData account, 6 System program
 *   data:     [0] disc, [1..3] fee_bps u16, [3] market bump (canonical) */
#define TRADING_IX_INITIALIZE_MARKET 0
uint64_t process_initialize_market(const GtxInput *in);

/* 1 CreateOrder: create the order PDA and its escrow vault, and move `amount` GRID into the vault.
 *   accounts: 0 seller [w, s] (pays), 1 market, 2 order [w] (PDA ["order", seller, order_id]),
 *             3 vault [w] (PDA ["vault", order]), 4 seller GRID account [w], 5 GRID mint,
 *             6 Token program, 7 System program
 *   data:     [0] disc, [1..9] order_id u64, [9..17] amount u64, [17..25] price u64,
 *             [25..33] expires_at i64, [33] order bump, [34] vault bump (both canonical),
 *             [35..37] max_fee_bps u16 (the highest market fee the seller accepts; the order records
 *             the market's fee at creation and every fill pays that) */
#define TRADING_IX_CREATE_ORDER 1
uint64_t process_create_order(const GtxInput *in);

/* 2 Buy: take `amount` GRID from the order's escrow and pay for it in one step.
 *   accounts: 0 buyer [s], 1 market, 2 order [w], 3 vault [w], 4 buyer GRID account [w],
 *             5 buyer THBC account [w], 6 seller THBC account [w], 7 fee account [w], 8 seller [w]
 *             (receives the vault's rent when the order fills), 9 Token program
 *   data:     [0] disc, [1..9] amount u64 */
#define TRADING_IX_BUY 2
uint64_t process_buy(const GtxInput *in);

/* 3 CancelOrder: the seller takes the unsold escrow back; the vault is closed.
 *   accounts: 0 seller [w, s], 1 order [w], 2 vault [w], 3 seller GRID account [w], 4 Token program
 *   data:     [0] disc */
#define TRADING_IX_CANCEL_ORDER 3
uint64_t process_cancel_order(const GtxInput *in);

/* 4 ExpireOrder: anyone, once the order has expired, returns the unsold escrow to the seller.
 *   accounts: 0 order [w], 1 vault [w], 2 seller GRID account [w], 3 seller [w], 4 Token program
 *   data:     [0] disc */
#define TRADING_IX_EXPIRE_ORDER 4
uint64_t process_expire_order(const GtxInput *in);

/* 5 CloseOrder: the seller reclaims the rent of a Filled / Cancelled / Expired order account.
 *   accounts: 0 seller [w, s], 1 order [w]
 *   data:     [0] disc */
#define TRADING_IX_CLOSE_ORDER 5
uint64_t process_close_order(const GtxInput *in);

/* 6 UpdateMarket: the market authority sets a new fee and fee account. The fee applies to orders created
 * afterwards (each order keeps the fee it was created under); the next Buy of any order pays its fee
 * into the new account.
 *   accounts: 0 authority [s], 1 market [w], 2 fee account (THBC token account)
 *   data:     [0] disc, [1..3] fee_bps u16 */
#define TRADING_IX_UPDATE_MARKET 6
uint64_t process_update_market(const GtxInput *in);

#endif
