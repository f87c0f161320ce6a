/* gtx/introspection.h: reading the Instructions sysvar, and confirming an Ed25519 precompile check.
 *
 * Instructions sysvar (Sysvar1nstructions1111111111111111111111111) account data:
 *   u16 num_instructions, u16 offset[num_instructions] (from the start of the data), then per
 *   instruction at its offset: u16 num_accounts, num_accounts x (u8 flags: bit0 signer, bit1 writable;
 *   key[32]), program_id[32], u16 data_len, data[data_len]; the last 2 bytes of the account are the u16
 *   index of the instruction now executing.
 *
 * Ed25519 precompile (Ed25519SigVerify111111111111111111111111111) instruction data:
 *   u8 num_signatures, u8 padding, then per signature 7 x u16: signature_offset,
 *   signature_instruction_index, public_key_offset, public_key_instruction_index, message_data_offset,
 *   message_data_size, message_instruction_index. An index of 0xFFFF means "this instruction's data".
 * The runtime verifies every precompile instruction before the transaction takes effect and fails the
 * whole transaction if any signature is bad, so finding one in the sysvar is proof that it verified,
 * whatever its position in the transaction. */
#ifndef GTX_INTROSPECTION_H
#define GTX_INTROSPECTION_H

#include "bytes.h"
#include "entrypoint.h"
#include "ids.h"

#define GTX_ED25519_PUBKEY_LEN 32u
#define GTX_ED25519_SIGNATURE_LEN 64u
#define GTX_ED25519_OFFSETS_START 2u
#define GTX_ED25519_OFFSETS_LEN 14u
#define GTX_ED25519_THIS_INSTRUCTION 0xFFFFu

typedef struct {
  const uint8_t *data; /* the sysvar account's data */
  uint64_t len;
  uint16_t num_instructions;
  uint16_t current_index; /* the instruction now executing */
} GtxInstructionsSysvar;

typedef struct {
  const SolPubkey *program_id;
  uint16_t num_accounts;
  const uint8_t *accounts; /* num_accounts x 33 bytes: flags, key; see gtx_ix_account_key */
  const uint8_t *data;
  uint16_t data_len;
} GtxIntrospectedInstruction;

#define GTX_IX_ACCOUNT_SIGNER 0x01u
#define GTX_IX_ACCOUNT_WRITABLE 0x02u

static inline const SolPubkey *gtx_ix_account_key(const GtxIntrospectedInstruction *ix, uint16_t i) {
  return (const SolPubkey *)(ix->accounts + (uint64_t)i * 33u + 1u);
}
static inline uint8_t gtx_ix_account_flags(const GtxIntrospectedInstruction *ix, uint16_t i) {
  return ix->accounts[(uint64_t)i * 33u];
}

/* Check that `account` really is the Instructions sysvar (else its data could be forged) and read its
 * header. ERROR_UNSUPPORTED_SYSVAR for another account, ERROR_INVALID_ACCOUNT_DATA if too short. */
static inline uint64_t gtx_instructions_sysvar_load(const SolAccountInfo *account, GtxInstructionsSysvar *out) {
  if (!gtx_pubkey_eq(account->key, &GTX_SYSVAR_INSTRUCTIONS_ID)) {
    GTX_LOG_KEY("expected the Instructions sysvar, got", account->key);
    return ERROR_UNSUPPORTED_SYSVAR;
  }
  if (account->data_len < 4)
    return ERROR_INVALID_ACCOUNT_DATA;
  out->data = account->data;
  out->len = account->data_len;
  out->num_instructions = gtx_load_u16_le(account->data);
  out->current_index = gtx_load_u16_le(account->data + account->data_len - 2);
  if (2u + 2u * (uint64_t)out->num_instructions + 2u > out->len)
    return ERROR_INVALID_ACCOUNT_DATA;
  return SUCCESS;
}

/* Instruction `index` of the transaction, bounds-checked against the sysvar data.
 * ERROR_INVALID_ARGUMENT if index >= num_instructions, ERROR_INVALID_ACCOUNT_DATA if malformed. */
static inline uint64_t gtx_instructions_get(const GtxInstructionsSysvar *s, uint16_t index,
                                            GtxIntrospectedInstruction *out) {
  if (index >= s->num_instructions)
    return ERROR_INVALID_ARGUMENT;
  uint64_t at = gtx_load_u16_le(s->data + 2u + 2u * (uint64_t)index);
  if (at + 2u > s->len)
    return ERROR_INVALID_ACCOUNT_DATA;
  out->num_accounts = gtx_load_u16_le(s->data + at);
  at += 2u;
  out->accounts = s->data + at;
  at += (uint64_t)out->num_accounts * 33u;
  if (at + GTX_PUBKEY_LEN + 2u > s->len)
    return ERROR_INVALID_ACCOUNT_DATA;
  out->program_id = (const SolPubkey *)(s->data + at);
  at += GTX_PUBKEY_LEN;
  out->data_len = gtx_load_u16_le(s->data + at);
  at += 2u;
  if (at + out->data_len > s->len)
    return ERROR_INVALID_ACCOUNT_DATA;
  out->data = s->data + at;
  return SUCCESS;
}

static inline bool gtx_ed25519_index_is_self(uint16_t referenced, uint16_t self) {
  return referenced == GTX_ED25519_THIS_INSTRUCTION || referenced == self;
}

/* SUCCESS if some Ed25519 precompile instruction in this transaction has a signature entry whose public
 * key and message, both read from that instruction's own data (index 0xFFFF or its own index), equal
 * `pubkey` (32 bytes) and `msg` (`msg_len` bytes). The signature itself may live anywhere: the
 * precompile verified it or the transaction would not be running.
 * Errors: ERROR_UNSUPPORTED_SYSVAR (account is not the Instructions sysvar), ERROR_INVALID_ACCOUNT_DATA
 * (malformed sysvar), ERROR_MISSING_REQUIRED_SIGNATURES (no such verification; logged). */
static inline uint64_t gtx_find_ed25519_verification(const SolAccountInfo *instructions_sysvar,
                                                     const uint8_t *pubkey, const uint8_t *msg,
                                                     uint64_t msg_len) {
  GtxInstructionsSysvar s;
  GTX_TRY(gtx_instructions_sysvar_load(instructions_sysvar, &s));
  for (uint16_t i = 0; i < s.num_instructions; i++) {
    GtxIntrospectedInstruction ix;
    GTX_TRY(gtx_instructions_get(&s, i, &ix));
    if (!gtx_pubkey_eq(ix.program_id, &GTX_ED25519_PROGRAM_ID) || ix.data_len < GTX_ED25519_OFFSETS_START)
      continue;
    uint64_t count = ix.data[0];
    if (GTX_ED25519_OFFSETS_START + count * GTX_ED25519_OFFSETS_LEN > ix.data_len)
      continue; /* malformed: the precompile would have failed the transaction */
    for (uint64_t j = 0; j < count; j++) {
      const uint8_t *e = ix.data + GTX_ED25519_OFFSETS_START + j * GTX_ED25519_OFFSETS_LEN;
      uint16_t pk_off = gtx_load_u16_le(e + 4), pk_ix = gtx_load_u16_le(e + 6);
      uint16_t msg_off = gtx_load_u16_le(e + 8), msg_size = gtx_load_u16_le(e + 10);
      uint16_t msg_ix = gtx_load_u16_le(e + 12);
      if (!gtx_ed25519_index_is_self(pk_ix, i) || !gtx_ed25519_index_is_self(msg_ix, i))
        continue;
      if (msg_size != msg_len || (uint64_t)pk_off + GTX_ED25519_PUBKEY_LEN > ix.data_len ||
          (uint64_t)msg_off + msg_size > ix.data_len)
        continue;
      if (gtx_memeq(ix.data + pk_off, pubkey, GTX_ED25519_PUBKEY_LEN) &&
          gtx_memeq(ix.data + msg_off, msg, msg_len))
        return SUCCESS;
    }
  }
  GTX_LOG("no Ed25519 verification of this key over this message in the transaction");
  return ERROR_MISSING_REQUIRED_SIGNATURES;
}

#endif
