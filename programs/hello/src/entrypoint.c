/* hello: the toolchain's example program. It proves the header, the linker and the chain client:
 * logging, signer / owner / PDA checks, a PDA-signed CPI, an event, and Ed25519 introspection. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[HELLO_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, HELLO_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case HELLO_IX_INITIALIZE: /* create the greeting PDA (System program CPI, PDA-signed) */
    return process_initialize(&in);
  case HELLO_IX_GREET: /* count a greeting by its authority */
    return process_greet(&in);
  case HELLO_IX_VERIFY_SIGNATURE: /* confirm an Ed25519 precompile check in this transaction */
    return process_verify_signature(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(HELLO_ERROR_UNKNOWN_INSTRUCTION);
  }
}
