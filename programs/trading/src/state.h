/* Account state of the trading program: fixed layouts, each starting with a discriminator byte and a
 * version byte, with checked loaders (owner, exact length, discriminator + version). Byte offsets are
 * documented in docs/programs/trading.md and mirrored by programs/trading/client.py. */
#ifndef TRADING_STATE_H
#define TRADING_STATE_H

#include <gtx_sol.h>
#include <gtx/token.h>

#include "error.h"

/* Version 2: accounts sit at the canonical PDA of the seeds they store (checked at creation); an order
 * carries the fee it was created under. */
#define TRADING_VERSION 2u
#define TRADING_DISC_MARKET 1u
#define TRADING_DISC_ORDER 2u

/* 1 kWh = 10^9 GRID base units; prices are THBC base units per kWh. */
#define GRID_DECIMALS 9u
#define GRID_PER_KWH 1000000000ull
#define FEE_BPS_MAX 10000u

#define MARKET_SEED "market"
#define ORDER_SEED "order"
#define VAULT_SEED "vault"

/* Market: the PDA ["market"] (one market per program deployment). */
#define MARKET_LEN 135u
typedef struct __attribute__((packed)) {
  uint8_t discriminator; /* TRADING_DISC_MARKET */
  uint8_t version;
  uint8_t bump;
  uint8_t grid_decimals;
  uint8_t thbc_decimals;
  uint16_t fee_bps; /* fee taken from each payment, 0..10_000 */
  SolPubkey authority;
  SolPubkey grid_mint;
  SolPubkey thbc_mint;
  SolPubkey fee_account; /* THBC token account receiving fees */
} Market;
_Static_assert(sizeof(Market) == MARKET_LEN, "Market layout is the documented 135 bytes");

enum {
  ORDER_STATE_ACTIVE = 1,
  ORDER_STATE_PARTIALLY_FILLED = 2,
  ORDER_STATE_FILLED = 3,
  ORDER_STATE_CANCELLED = 4,
  ORDER_STATE_EXPIRED = 5,
};

/* Order: the PDA ["order", seller, order_id u64 LE]. Its escrow vault is the token account at the PDA
 * ["vault", order] whose token authority is the order PDA itself, so only this order can move it.
 * fee_bps is the market's fee when the order was created (at most the seller's max_fee_bps): every fill
 * of this order pays that fee, whatever UpdateMarket sets later. */
#define ORDER_LEN 159u
typedef struct __attribute__((packed)) {
  uint8_t discriminator; /* TRADING_DISC_ORDER */
  uint8_t version;
  uint8_t bump;
  uint8_t vault_bump;
  uint8_t state; /* ORDER_STATE_* */
  SolPubkey market;
  SolPubkey seller;
  SolPubkey vault;
  uint64_t order_id;
  uint64_t amount;    /* GRID base units offered */
  uint64_t remaining; /* GRID base units not sold (still in escrow while Active / PartiallyFilled) */
  uint64_t price;     /* THBC base units per kWh */
  int64_t expires_at; /* unix seconds; buys need now < expires_at */
  int64_t created_at;
  uint64_t proceeds; /* THBC base units the seller received (after fees) */
  uint16_t fee_bps;  /* 157: the fee terms of this order, fixed at creation */
} Order;
_Static_assert(sizeof(Order) == ORDER_LEN, "Order layout is the documented 159 bytes");

static inline bool order_is_open(const Order *o) {
  return o->state == ORDER_STATE_ACTIVE || o->state == ORDER_STATE_PARTIALLY_FILLED;
}

/* Checked loader shared by both account types: owner, exact length, discriminator and version. */
static inline uint64_t trading_account_load(const SolAccountInfo *a, const SolPubkey *program_id,
                                            uint64_t len, uint8_t discriminator, void **out) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != len) {
    GTX_LOG_KEY("account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_ACCOUNT_SIZE);
  }
  if (a->data[0] != discriminator || a->data[1] != TRADING_VERSION) {
    GTX_LOG_KEY("account has the wrong type or version:", a->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_ACCOUNT_TYPE);
  }
  *out = a->data;
  return SUCCESS;
}

/* PDA seeds without the bump (see expect_pda); `parts` must outlive `out` and have room for the bump. */
static inline void market_seeds(SolSignerSeed parts[2], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)MARKET_SEED;
  parts[0].len = sizeof(MARKET_SEED) - 1;
  out->addr = parts;
  out->len = 1;
}

static inline void order_seeds(const SolPubkey *seller, const uint8_t order_id_le[8], SolSignerSeed parts[4],
                               SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)ORDER_SEED;
  parts[0].len = sizeof(ORDER_SEED) - 1;
  parts[1].addr = seller->x;
  parts[1].len = GTX_PUBKEY_LEN;
  parts[2].addr = order_id_le;
  parts[2].len = 8;
  out->addr = parts;
  out->len = 3;
}

static inline void vault_seeds(const SolPubkey *order, SolSignerSeed parts[3], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)VAULT_SEED;
  parts[0].len = sizeof(VAULT_SEED) - 1;
  parts[1].addr = order->x;
  parts[1].len = GTX_PUBKEY_LEN;
  out->addr = parts;
  out->len = 2;
}

/* Append the bump to seeds built above, turning them into a PDA signer for invoke_signed. */
static inline void seeds_with_bump(SolSignerSeeds *seeds, SolSignerSeed *parts, const uint8_t *bump) {
  parts[seeds->len].addr = bump;
  parts[seeds->len].len = 1;
  seeds->len += 1;
}

/* Loaders: owner, length, discriminator + version, and the address re-derived from the seeds the
 * account stores with its bump (checked canonical at creation): a trading account is always the
 * canonical PDA of its own fields. */
static inline uint64_t market_load(const SolAccountInfo *a, const SolPubkey *program_id, Market **out) {
  GTX_TRY(trading_account_load(a, program_id, MARKET_LEN, TRADING_DISC_MARKET, (void **)out));
  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  market_seeds(parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

static inline uint64_t order_load(const SolAccountInfo *a, const SolPubkey *program_id, Order **out) {
  GTX_TRY(trading_account_load(a, program_id, ORDER_LEN, TRADING_DISC_ORDER, (void **)out));
  SolSignerSeed parts[4];
  SolSignerSeeds seeds;
  order_seeds(&(*out)->seller, (const uint8_t *)&(*out)->order_id, parts, &seeds);
  return expect_pda(a, &seeds, (*out)->bump, program_id);
}

#endif
