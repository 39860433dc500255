// The registry a fresh database starts with: the trusted publishers named in
// the project brief, as repository-level sources with their official Hugging
// Face URIs, plus the project's own ossgate://bundled collection. No file
// hashes: they are not published anywhere this project can read, so
// operators add them (provctl trust add-file --lfs-pointer ...).
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_DEFAULT_REGISTRY_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_DEFAULT_REGISTRY_H_

#include <vector>

#include "provenance_service/core/registry.h"

namespace ossgate::provenance {

inline constexpr char kDefaultRegistryCaller[] = "system:default-registry";

// Changes applied, in order, when a new log is created.
std::vector<RegistryChange> DefaultRegistryChanges();

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_DEFAULT_REGISTRY_H_
