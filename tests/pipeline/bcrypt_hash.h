// BcryptHash: a bcrypt hash of a password at cost 5 (quick to check), as
// basic_auth_users take them, made with libcrypt. Test-only, header-only.
//   options.web.basic_auth_users = {{"prometheus", BcryptHash("s3cret")}};
#ifndef NOVAPULSE_TESTS_PIPELINE_BCRYPT_HASH_H_
#define NOVAPULSE_TESTS_PIPELINE_BCRYPT_HASH_H_

#include <crypt.h>

#include <memory>
#include <string>

namespace novapulse::testing {

// "" when libcrypt fails.
inline std::string BcryptHash(const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof(setting)) == nullptr) return "";
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(password.c_str(), setting, data.get());
  return hash != nullptr ? hash : "";
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_PIPELINE_BCRYPT_HASH_H_
