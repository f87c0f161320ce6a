/* Custom errors of the certificates program (InstructionError::Custom(n)); names mirrored in
 * programs/certificates/client.py CERTIFICATES_ERRORS. Built-in errors are used where one fits:
 * MissingRequiredSignature, InvalidAccountOwner, InvalidSeeds, IncorrectAuthority (initialise without
 * the upgrade authority), ArithmeticOverflow. */
#ifndef CERTIFICATES_ERROR_H
#define CERTIFICATES_ERROR_H

enum {
  CERT_ERROR_UNKNOWN_INSTRUCTION = 1, /* first data byte is no known discriminator */
  CERT_ERROR_ACCOUNT_WRONG_SIZE = 2,  /* an account's data is not its documented length */
  CERT_ERROR_WRONG_ACCOUNT_TYPE = 3,  /* discriminator or version byte is not the expected one */
  CERT_ERROR_NOT_GOVERNANCE = 4,      /* signer is not the config's governance authority */
  CERT_ERROR_WRONG_REGISTRY = 5,      /* meter account not owned by the configured registry program */
  CERT_ERROR_NOT_METER_OWNER = 6,     /* signer is not the meter's owner */
  CERT_ERROR_MARK_METER_MISMATCH = 7, /* the certification mark belongs to another meter */
  CERT_ERROR_ALREADY_CERTIFIED = 8,   /* to_wh is not above the meter's certified_up_to_wh */
  CERT_ERROR_EXCEEDS_SETTLED_GENERATION = 9,     /* to_wh is above the settled generation since the baseline */
  CERT_ERROR_INVALID_STATE = 10,      /* the certificate's status does not allow this transition */
  CERT_ERROR_CERTIFICATE_EXPIRED = 11,            /* the certificate's validity has ended */
  CERT_ERROR_NOT_YET_EXPIRED = 12,    /* expire called before expires_at */
  CERT_ERROR_INVALID_REASON = 13,     /* revoke needs a non-zero reason code */
  CERT_ERROR_NOT_CERTIFICATE_OWNER = 14, /* signer is not the certificate's holder */
  CERT_ERROR_INVALID_VALIDITY = 15,   /* validity period must be positive */
  CERT_ERROR_NON_CANONICAL_BUMP = 16, /* a PDA (config, mark, certificate, or the registry meter handed in)
                                       * at a bump other than find_program_address's */
};

#endif
