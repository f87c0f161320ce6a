/* Custom errors of the hello program (InstructionError::Custom(n)); names mirrored in
 * programs/hello/client.py HELLO_ERRORS. Built-in errors (ERROR_*) are used where one fits. */
#ifndef HELLO_ERROR_H
#define HELLO_ERROR_H

enum {
  HELLO_ERROR_UNKNOWN_INSTRUCTION = 1, /* first data byte is no known discriminator */
  HELLO_ERROR_GREETING_WRONG_SIZE = 2, /* greeting account data is not GREETING_LEN bytes */
  HELLO_ERROR_WRONG_AUTHORITY = 3,     /* signer is not the greeting's authority */
  HELLO_ERROR_NON_CANONICAL_BUMP = 4,  /* the greeting PDA at a bump other than find_program_address's */
};

#endif
