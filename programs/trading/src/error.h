/* Custom errors of the trading program (InstructionError::Custom(n)); names mirrored in
 * programs/trading/client.py TRADING_ERRORS and documented in docs/programs/trading.md.
 * Built-in errors are used where one says it exactly: MissingRequiredSignature (a signer did not sign),
 * InvalidAccountOwner (an account is not owned by this program / the Token program), InvalidSeeds (an
 * account is not the PDA its seeds and stored bump give), InvalidArgument (an account must be writable),
 * IncorrectProgramId (Token / System program impostor), AccountAlreadyInitialized,
 * IncorrectAuthority (initialize_market signer is not the program's upgrade authority),
 * InvalidInstructionData (wrong data length), NotEnoughAccountKeys. */
#ifndef TRADING_ERROR_H
#define TRADING_ERROR_H

enum {
  TRADING_ERROR_UNKNOWN_INSTRUCTION = 1,       /* first data byte is no known discriminator */
  TRADING_ERROR_WRONG_ACCOUNT_SIZE = 2,        /* market / order account data has the wrong length */
  TRADING_ERROR_WRONG_ACCOUNT_TYPE = 3,        /* discriminator or version byte is not the expected one */
  TRADING_ERROR_FEE_TOO_HIGH = 4,              /* fee_bps > 10_000 */
  TRADING_ERROR_WRONG_DECIMALS = 5,            /* GRID mint does not have 9 decimals (1 kWh = 10^9) */
  TRADING_ERROR_SAME_MINT = 6,                 /* GRID and THBC mints are the same */
  TRADING_ERROR_WRONG_MINT = 7,                /* a mint or token account is not of the market's mint */
  TRADING_ERROR_WRONG_TOKEN_OWNER = 8,         /* a token account's authority is not who it must be */
  TRADING_ERROR_WRONG_FEE_ACCOUNT = 9,         /* fee account is not the market's */
  TRADING_ERROR_WRONG_MARKET = 10,             /* market account is not the order's market */
  TRADING_ERROR_WRONG_VAULT = 11,              /* vault is not the order's escrow vault */
  TRADING_ERROR_WRONG_SELLER = 12,             /* seller account is not the order's seller */
  TRADING_ERROR_NOT_SELLER = 13,               /* signer is not the order's seller */
  TRADING_ERROR_SELF_TRADE = 14,               /* buyer is the order's seller */
  TRADING_ERROR_ZERO_AMOUNT = 15,              /* amount is 0 */
  TRADING_ERROR_ZERO_PRICE = 16,               /* price is 0 */
  TRADING_ERROR_EXPIRY_IN_PAST = 17,           /* expires_at <= now at creation */
  TRADING_ERROR_ORDER_NOT_ACTIVE = 18,         /* order is Filled, Cancelled or Expired */
  TRADING_ERROR_ORDER_EXPIRED = 19,            /* buying at or after expires_at */
  TRADING_ERROR_ORDER_NOT_EXPIRED = 20,        /* expire_order before expires_at */
  TRADING_ERROR_AMOUNT_EXCEEDS_REMAINING = 21, /* buying more than the order has left */
  TRADING_ERROR_INSUFFICIENT_BALANCE = 22,     /* a payer's token account holds less than needed */
  TRADING_ERROR_COST_OVERFLOW = 23,            /* amount x price / 10^9 (or a total) exceeds u64 */
  TRADING_ERROR_ORDER_STILL_OPEN = 24,         /* close_order on an Active / PartiallyFilled order */
  TRADING_ERROR_NOT_MARKET_AUTHORITY = 25,     /* update_market signer is not the market's authority */
  TRADING_ERROR_FEE_ABOVE_LIMIT = 26,          /* market fee above the max_fee_bps the seller signed */
  TRADING_ERROR_NON_CANONICAL_BUMP = 27,       /* market / order / vault PDA at a bump other than
                                                * find_program_address's */
};

#endif
