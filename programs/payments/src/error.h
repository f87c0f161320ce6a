/* Custom errors of the payments program (InstructionError::Custom(n)); names mirrored in
 * programs/payments/client.py PAYMENTS_ERRORS. Built-in errors are used where one fits:
 * MissingRequiredSignature, InvalidAccountOwner, InvalidSeeds, IncorrectProgramId, IncorrectAuthority
 * (initialise without the upgrade authority). */
#ifndef PAYMENTS_ERROR_H
#define PAYMENTS_ERROR_H

enum {
  PAYMENTS_ERROR_UNKNOWN_INSTRUCTION = 1,    /* first data byte is no known discriminator */
  PAYMENTS_ERROR_ACCOUNT_WRONG_SIZE = 2,     /* config or deposit account data is not its documented length */
  PAYMENTS_ERROR_WRONG_ACCOUNT_TYPE = 3,     /* discriminator or version byte is not the expected one */
  PAYMENTS_ERROR_NOT_OPERATOR = 4,           /* Issue signer is not the configured payment operator */
  PAYMENTS_ERROR_NOT_AUTHORITY = 5,          /* SetOperator signer is not the config's authority */
  PAYMENTS_ERROR_ZERO_AMOUNT = 6,            /* Issue / Redeem of 0 */
  PAYMENTS_ERROR_WRONG_MINT = 7,             /* mint account is not the configured THBC mint */
  PAYMENTS_ERROR_TOKEN_ACCOUNT_WRONG_MINT = 8, /* token account is not a THBC account */
  PAYMENTS_ERROR_WRONG_TOKEN_OWNER = 9,      /* Redeem from an account the signer does not hold */
  PAYMENTS_ERROR_INSUFFICIENT_BALANCE = 10,  /* Redeem of more THBC than the account holds */
  PAYMENTS_ERROR_REFERENCE_ALREADY_USED = 11, /* Issue with a deposit reference that was issued before */
  PAYMENTS_ERROR_WRONG_MINT_AUTHORITY = 12,  /* Initialize: THBC's mint authority is not this program's PDA */
  PAYMENTS_ERROR_WRONG_DECIMALS = 13,        /* Initialize: THBC has 6 decimals */
  PAYMENTS_ERROR_WRONG_AUTHORITY = 14,       /* authority account is not this program's PDA */
  PAYMENTS_ERROR_NON_CANONICAL_BUMP = 15,    /* config, deposit or authority PDA at a bump other than
                                              * find_program_address's */
};

#endif
