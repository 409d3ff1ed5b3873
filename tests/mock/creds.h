/*
 * creds.h - throwaway credentials for the mock and its clients: a TLS
 * certificate for 127.0.0.1/localhost, an APNs .p8 signing key and a
 * Google service-account JSON (`pr-mock --make-credentials DIR`), and
 * loading the public halves the mock verifies with.
 */
#ifndef PR_MOCK_CREDS_H
#define PR_MOCK_CREDS_H

#include <openssl/evp.h>
#include <stddef.h>

/* Key ID of the .p8 that mock_creds_make() writes (AuthKey_<id>.p8). */
#define MOCK_APNS_KEY_ID "TESTKEY001"
/* A team ID to pair with it; the mock takes whatever --apns-team-id says. */
#define MOCK_APNS_TEAM_ID "TESTTEAM01"

/*
 * Write DIR/tls.crt, DIR/tls.key, DIR/AuthKey_TESTKEY001.p8 and
 * DIR/service-account.json, each mode 0600 (DIR is created 0700 when
 * missing). project may be NULL ("pr-mock-project"); token_uri may be NULL
 * (the literal placeholder "https://127.0.0.1:PORT/token"). 0 on success,
 * else -1 with a message in err.
 */
int mock_creds_make(const char *dir, const char *project, const char *token_uri,
		    char *err, size_t errlen);

/* A PEM private key (PKCS#8 or traditional) from a file; caller frees. */
EVP_PKEY *mock_creds_load_key(const char *path, char *err, size_t errlen);

/* The parts of a service-account JSON the token endpoint checks. */
struct mock_sa {
	char *project_id;     /* owned */
	char *client_email;   /* owned */
	char *token_uri;      /* owned */
	char *private_key_id; /* owned */
	EVP_PKEY *key;	      /* owned; its public half verifies assertions */
};

/* Load path into sa (zeroed first). 0 on success, else -1 with err. */
int mock_sa_load(struct mock_sa *sa, const char *path, char *err,
		 size_t errlen);
void mock_sa_cleanup(struct mock_sa *sa);

#endif
