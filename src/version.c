/* version.c - version strings of the relay and its libraries, read at run
 * time where the library can say (what is linked, not what was compiled
 * against). */
#include "autoconf.h"

#include <curl/curl.h>
#include <ev.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <wslay/wslay.h>

#include "version.h"

const char *pr_version(void)
{
	return PACKAGE_VERSION;
}

json_t *pr_version_libraries(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	unsigned long hp = http_parser_version();
	char ev[32], parser[32];

	snprintf(ev, sizeof(ev), "%d.%d", ev_version_major(),
		 ev_version_minor());
	snprintf(parser, sizeof(parser), "%lu.%lu.%lu", (hp >> 16) & 255,
		 (hp >> 8) & 255, hp & 255);
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "libev", ev, "libcurl",
	    cv->version, "nghttp2", nghttp2_version(0)->version_str, "openssl",
	    OpenSSL_version(OPENSSL_VERSION), "sqlite", sqlite3_libversion(),
	    "jansson", jansson_version_str(), "http-parser", parser);
}
