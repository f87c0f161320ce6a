#include <gtx_sol.h>

#include "instructions.h"

uint64_t process_verify_signature(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 1));
  if (in->data_len < 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("verify_signature: data must be [2, pubkey[32], message...]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *pubkey = in->data + 1;
  const uint8_t *message = in->data + 1 + GTX_PUBKEY_LEN;
  GTX_TRY(gtx_find_ed25519_verification(&in->accounts[0], pubkey, message,
                                        in->data_len - 1 - GTX_PUBKEY_LEN));
  GTX_LOG("hello: Ed25519 verification found");
  return SUCCESS;
}
