/* The escrow vault of an order: a token account at the PDA ["vault", order] whose token authority is the
 * order PDA, so moving GRID out of it needs the order's seeds (only this program has them). */
#ifndef TRADING_ESCROW_H
#define TRADING_ESCROW_H

#include <gtx_sol.h>
#include <gtx/token.h>

#include "error.h"
#include "state.h"

/* The vault passed in must be the one recorded in the order (derived and checked at creation) and
 * still a token account of the Token program whose authority is the order. */
static inline uint64_t vault_check(const SolAccountInfo *vault, const SolAccountInfo *order_account,
                                   const Order *o, GtxTokenAccount *out) {
  if (!gtx_pubkey_eq(vault->key, &o->vault)) {
    GTX_LOG_KEY("vault is not this order's escrow vault:", vault->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_VAULT);
  }
  GTX_TRY(expect_writable(vault));
  GTX_TRY(gtx_token_account_load(vault, out));
  if (!gtx_pubkey_eq(out->owner, order_account->key)) {
    GTX_LOG_KEY("vault's token authority is not the order:", vault->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_VAULT);
  }
  return SUCCESS;
}

/* Sign as the order PDA: ["order", seller, order_id LE, bump]. */
typedef struct {
  SolSignerSeed parts[4];
  SolSignerSeeds seeds;
} OrderSigner;

static inline void order_signer(const Order *o, OrderSigner *s) {
  order_seeds(&o->seller, (const uint8_t *)&o->order_id, s->parts, &s->seeds);
  seeds_with_bump(&s->seeds, s->parts, &o->bump);
}

/* Move `amount` GRID out of the vault (0 = nothing to move) and, if `close`, close the vault with its
 * rent going to `rent_to` (the seller, who paid it). */
typedef struct {
  const SolAccountInfo *vault;
  const SolAccountInfo *order_account;
  const SolAccountInfo *destination; /* GRID token account */
  const SolAccountInfo *rent_to;     /* receives the vault's lamports when closed */
  uint64_t amount;
  bool close;
} VaultRelease;

static inline uint64_t vault_release(const VaultRelease *r, const Order *o) {
  OrderSigner signer;
  order_signer(o, &signer);
  if (r->amount != 0) {
    GtxTokenTransfer t = {r->vault, r->destination, r->order_account, r->amount, &signer.seeds};
    GTX_TRY(gtx_token_transfer(&t));
  }
  if (r->close) {
    GtxTokenCloseAccount c = {r->vault, r->rent_to, r->order_account, &signer.seeds};
    GTX_TRY(gtx_token_close_account(&c));
  }
  return SUCCESS;
}

/* Cancel and expire: empty the vault into the seller's GRID account and close it (rent to `rent_to`, the
 * seller). The GRID account must be of the vault's mint and held by the seller: expire is callable by
 * anyone, so it must not be able to redirect the escrow. Emits OrderCancelled or OrderExpired. */
typedef struct {
  const GtxInput *in;
  const SolAccountInfo *order_account;
  Order *order;
  const SolAccountInfo *vault;
  const SolAccountInfo *seller_grid;
  const SolAccountInfo *rent_to;
  bool expire; /* ExpireOrder (only once expires_at has passed), else CancelOrder */
} EscrowReturn;
uint64_t escrow_return(const EscrowReturn *r); /* escrow.c */

static inline uint64_t now_unix(int64_t *out) {
  SolClock clock;
  if (sol_get_clock_sysvar(&clock) != 0) {
    GTX_LOG("clock sysvar unavailable");
    return ERROR_UNSUPPORTED_SYSVAR;
  }
  *out = clock.unix_timestamp;
  return SUCCESS;
}

#endif
