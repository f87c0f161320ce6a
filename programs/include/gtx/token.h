/* gtx/token.h: SPL Token (TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA) from C: account decoding and CPIs.
 *
 * Not included by gtx_sol.h (most programs never touch tokens): `#include <gtx/token.h>` after it.
 *
 * Decoding — each loader checks the owner program first (an account not owned by the Token program can
 * hold any bytes), then the exact size, then the initialised flag:
 *   gtx_token_account_load(a, &view)  ERROR_INVALID_ACCOUNT_OWNER  not owned by the Token program
 *                                     ERROR_INVALID_ACCOUNT_DATA   not 165 bytes (a mint, or Token-2022)
 *                                     ERROR_UNINITIALIZED_ACCOUNT  state Uninitialized
 *   gtx_mint_load(a, &view)           same three errors, for the 82-byte mint layout
 * The views point into the input buffer (no copies); compare mint / owner with gtx_pubkey_eq and return
 * the program's own error for a mismatch ("wrong mint", "vault not owned by the escrow authority").
 *
 * CPIs — one argument struct each (BPF functions take at most 5 arguments); `signer_seeds` is NULL when
 * the authority signed the transaction itself, or the seeds + bump of the PDA authority:
 *   gtx_token_transfer(&GtxTokenTransfer)                 Transfer (3): source -> destination
 *   gtx_token_transfer_checked(&GtxTokenTransferChecked)  TransferChecked (12): also checks mint, decimals
 *   gtx_token_mint_to(&GtxTokenMintTo)                    MintTo (7): mint authority (usually a PDA) mints
 *   gtx_token_burn(&GtxTokenBurn)                         Burn (8)
 *   gtx_token_close_account(&GtxTokenCloseAccount)        CloseAccount (9): zero-balance account's lamports
 *                                                         go to `destination`
 *   gtx_token_initialize_account3(account, mint, owner)   InitializeAccount3 (18): no Rent sysvar account
 * The Token program's own account must be one of the calling instruction's accounts (check it with
 * expect_program(a, &GTX_TOKEN_PROGRAM_ID)); it need not be in the account infos handed to the CPI.
 * A failing token CPI aborts the whole instruction with the Token program's error (e.g. Custom(1),
 * InsufficientFunds, in its own numbering), so a program that wants its own error for a short balance
 * checks the decoded amount before the CPI.
 *
 * Layouts (spl-token state.rs, little endian, COption = u32 tag + value):
 *   Account (165): mint[0..32], owner[32..64], amount u64 [64..72], delegate COption<Pubkey> [72..108],
 *                  state u8 [108] (0 Uninitialized, 1 Initialized, 2 Frozen), is_native COption<u64>
 *                  [109..121], delegated_amount u64 [121..129], close_authority COption<Pubkey> [129..165]
 *   Mint (82):     mint_authority COption<Pubkey> [0..36], supply u64 [36..44], decimals u8 [44],
 *                  is_initialized u8 [45], freeze_authority COption<Pubkey> [46..82] */
#ifndef GTX_TOKEN_H
#define GTX_TOKEN_H

#include "bytes.h"
#include "checks.h"
#include "cpi.h"
#include "entrypoint.h"

/* TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA */
static const SolPubkey GTX_TOKEN_PROGRAM_ID = {{
    0x06, 0xdd, 0xf6, 0xe1, 0xd7, 0x65, 0xa1, 0x93, 0xd9, 0xcb, 0xe1, 0x46, 0xce, 0xeb, 0x79, 0xac,
    0x1c, 0xb4, 0x85, 0xed, 0x5f, 0x5b, 0x37, 0x91, 0x3a, 0x8c, 0xf5, 0x85, 0x7e, 0xff, 0x00, 0xa9}};

#define GTX_TOKEN_ACCOUNT_LEN 165u
#define GTX_TOKEN_MINT_LEN 82u

#define GTX_TOKEN_IX_TRANSFER 3u
#define GTX_TOKEN_IX_MINT_TO 7u
#define GTX_TOKEN_IX_BURN 8u
#define GTX_TOKEN_IX_CLOSE_ACCOUNT 9u
#define GTX_TOKEN_IX_TRANSFER_CHECKED 12u
#define GTX_TOKEN_IX_INITIALIZE_ACCOUNT3 18u

#define GTX_TOKEN_STATE_UNINITIALIZED 0u
#define GTX_TOKEN_STATE_INITIALIZED 1u
#define GTX_TOKEN_STATE_FROZEN 2u

/* A token account as the program sees it (pointers into the account's data). */
typedef struct {
  const SolPubkey *mint;
  const SolPubkey *owner; /* the token-account authority, not the owner program */
  uint64_t amount;
  uint8_t state;
  bool has_delegate;
  bool is_native;
  bool has_close_authority;
} GtxTokenAccount;

typedef struct {
  bool has_mint_authority;
  const SolPubkey *mint_authority; /* valid only when has_mint_authority */
  uint64_t supply;
  uint8_t decimals;
  bool has_freeze_authority;
  const SolPubkey *freeze_authority; /* valid only when has_freeze_authority */
} GtxMint;

static inline uint64_t gtx_token_account_load(const SolAccountInfo *a, GtxTokenAccount *out) {
  if (!gtx_pubkey_eq(a->owner, &GTX_TOKEN_PROGRAM_ID)) {
    GTX_LOG_KEY("token account not owned by the Token program:", a->key);
    return ERROR_INVALID_ACCOUNT_OWNER;
  }
  if (a->data_len != GTX_TOKEN_ACCOUNT_LEN) {
    GTX_LOG_KEY("not a token account (wrong size):", a->key);
    return ERROR_INVALID_ACCOUNT_DATA;
  }
  const uint8_t *d = a->data;
  if (d[108] == GTX_TOKEN_STATE_UNINITIALIZED) {
    GTX_LOG_KEY("token account is not initialised:", a->key);
    return ERROR_UNINITIALIZED_ACCOUNT;
  }
  out->mint = (const SolPubkey *)d;
  out->owner = (const SolPubkey *)(d + 32);
  out->amount = gtx_load_u64_le(d + 64);
  out->has_delegate = gtx_load_u32_le(d + 72) != 0;
  out->state = d[108];
  out->is_native = gtx_load_u32_le(d + 109) != 0;
  out->has_close_authority = gtx_load_u32_le(d + 129) != 0;
  return SUCCESS;
}

static inline uint64_t gtx_mint_load(const SolAccountInfo *a, GtxMint *out) {
  if (!gtx_pubkey_eq(a->owner, &GTX_TOKEN_PROGRAM_ID)) {
    GTX_LOG_KEY("mint not owned by the Token program:", a->key);
    return ERROR_INVALID_ACCOUNT_OWNER;
  }
  if (a->data_len != GTX_TOKEN_MINT_LEN) {
    GTX_LOG_KEY("not a mint (wrong size):", a->key);
    return ERROR_INVALID_ACCOUNT_DATA;
  }
  const uint8_t *d = a->data;
  if (d[45] == 0) {
    GTX_LOG_KEY("mint is not initialised:", a->key);
    return ERROR_UNINITIALIZED_ACCOUNT;
  }
  out->has_mint_authority = gtx_load_u32_le(d) != 0;
  out->mint_authority = (const SolPubkey *)(d + 4);
  out->supply = gtx_load_u64_le(d + 36);
  out->decimals = d[44];
  out->has_freeze_authority = gtx_load_u32_le(d + 46) != 0;
  out->freeze_authority = (const SolPubkey *)(d + 50);
  return SUCCESS;
}

/* Three-account token instructions share one shape: [a (w), b (w or r), authority (s)] + data. */
static inline uint64_t gtx_token_invoke3(const SolAccountInfo *a, bool b_writable, const SolAccountInfo *b,
                                         const SolAccountInfo *authority, const uint8_t *data,
                                         uint64_t data_len, const SolSignerSeeds *signer_seeds) {
  SolAccountMeta metas[3] = {
      {a->key, true, false},
      {b->key, b_writable, false},
      {authority->key, false, true},
  };
  SolAccountInfo infos[3] = {*a, *b, *authority};
  SolInstruction ix = {(SolPubkey *)&GTX_TOKEN_PROGRAM_ID, metas, 3, (uint8_t *)data, data_len};
  return gtx_invoke_signed(&ix, infos, 3, signer_seeds, signer_seeds ? 1 : 0);
}

typedef struct {
  const SolAccountInfo *source;      /* writable token account */
  const SolAccountInfo *destination; /* writable token account of the same mint */
  const SolAccountInfo *authority;   /* source's owner (or delegate): a signer, or a PDA */
  uint64_t amount;
  const SolSignerSeeds *signer_seeds; /* seeds + bump of a PDA authority, else NULL */
} GtxTokenTransfer;

static inline uint64_t gtx_token_transfer(const GtxTokenTransfer *t) {
  uint8_t data[9];
  data[0] = GTX_TOKEN_IX_TRANSFER;
  gtx_store_u64_le(data + 1, t->amount);
  /* Transfer's accounts: source [w], destination [w], authority [s] */
  return gtx_token_invoke3(t->source, true, t->destination, t->authority, data, sizeof(data),
                           t->signer_seeds);
}

typedef struct {
  const SolAccountInfo *source;
  const SolAccountInfo *mint; /* read-only; the Token program checks source/destination are of it */
  const SolAccountInfo *destination;
  const SolAccountInfo *authority;
  uint64_t amount;
  uint8_t decimals; /* must equal the mint's decimals or the Token program refuses */
  const SolSignerSeeds *signer_seeds;
} GtxTokenTransferChecked;

static inline uint64_t gtx_token_transfer_checked(const GtxTokenTransferChecked *t) {
  uint8_t data[10];
  data[0] = GTX_TOKEN_IX_TRANSFER_CHECKED;
  gtx_store_u64_le(data + 1, t->amount);
  data[9] = t->decimals;
  /* TransferChecked's accounts: source [w], mint [], destination [w], authority [s] */
  SolAccountMeta metas[4] = {
      {t->source->key, true, false},
      {t->mint->key, false, false},
      {t->destination->key, true, false},
      {t->authority->key, false, true},
  };
  SolAccountInfo infos[4] = {*t->source, *t->mint, *t->destination, *t->authority};
  SolInstruction ix = {(SolPubkey *)&GTX_TOKEN_PROGRAM_ID, metas, 4, data, sizeof(data)};
  return gtx_invoke_signed(&ix, infos, 4, t->signer_seeds, t->signer_seeds ? 1 : 0);
}

typedef struct {
  const SolAccountInfo *mint;        /* writable */
  const SolAccountInfo *destination; /* writable token account of `mint` */
  const SolAccountInfo *authority;   /* the mint authority: usually this program's PDA */
  uint64_t amount;
  const SolSignerSeeds *signer_seeds;
} GtxTokenMintTo;

static inline uint64_t gtx_token_mint_to(const GtxTokenMintTo *t) {
  uint8_t data[9];
  data[0] = GTX_TOKEN_IX_MINT_TO;
  gtx_store_u64_le(data + 1, t->amount);
  /* MintTo's accounts: mint [w], destination [w], authority [s] */
  return gtx_token_invoke3(t->mint, true, t->destination, t->authority, data, sizeof(data),
                           t->signer_seeds);
}

typedef struct {
  const SolAccountInfo *account;   /* writable token account */
  const SolAccountInfo *mint;      /* writable */
  const SolAccountInfo *authority; /* the account's owner: a signer, or a PDA */
  uint64_t amount;
  const SolSignerSeeds *signer_seeds;
} GtxTokenBurn;

static inline uint64_t gtx_token_burn(const GtxTokenBurn *t) {
  uint8_t data[9];
  data[0] = GTX_TOKEN_IX_BURN;
  gtx_store_u64_le(data + 1, t->amount);
  /* Burn's accounts: account [w], mint [w], authority [s] */
  return gtx_token_invoke3(t->account, true, t->mint, t->authority, data, sizeof(data), t->signer_seeds);
}

typedef struct {
  const SolAccountInfo *account;     /* writable token account with a zero balance */
  const SolAccountInfo *destination; /* writable; receives the account's lamports */
  const SolAccountInfo *authority;   /* the account's owner (or close authority) */
  const SolSignerSeeds *signer_seeds;
} GtxTokenCloseAccount;

static inline uint64_t gtx_token_close_account(const GtxTokenCloseAccount *t) {
  uint8_t data[1] = {GTX_TOKEN_IX_CLOSE_ACCOUNT};
  /* CloseAccount's accounts: account [w], destination [w], authority [s] */
  return gtx_token_invoke3(t->account, true, t->destination, t->authority, data, sizeof(data),
                           t->signer_seeds);
}

/* InitializeAccount3: make an already-allocated 165-byte account owned by the Token program (create it
 * with gtx_create_account, owner GTX_TOKEN_PROGRAM_ID) a token account of `mint` whose authority is
 * `owner` (often a PDA of the calling program, which can later sign for it). */
static inline uint64_t gtx_token_initialize_account3(const SolAccountInfo *account, const SolAccountInfo *mint,
                                                     const SolPubkey *owner) {
  uint8_t data[1 + GTX_PUBKEY_LEN];
  data[0] = GTX_TOKEN_IX_INITIALIZE_ACCOUNT3;
  gtx_memcpy(data + 1, owner, GTX_PUBKEY_LEN);
  /* InitializeAccount3's accounts: account [w], mint [] */
  SolAccountMeta metas[2] = {
      {account->key, true, false},
      {mint->key, false, false},
  };
  SolAccountInfo infos[2] = {*account, *mint};
  SolInstruction ix = {(SolPubkey *)&GTX_TOKEN_PROGRAM_ID, metas, 2, data, sizeof(data)};
  return gtx_invoke(&ix, infos, 2);
}

#endif
