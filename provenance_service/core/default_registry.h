// The registry a fresh database starts with: the trusted publishers named in
// the project brief, as repository-level sources with their official Hugging
// Face URIs and the model family of their files (gpt-oss, qwen2, phi3), plus
// the project's own ossgate://bundled collection (no family: each file names
// its own). No file hashes: none was found published in a primary source
// this project can read, so operators add them (provctl trust add-file
// --lfs-pointer ...), and a source without hashes approves nothing.
// A database created before families keeps its seed records as they were
// (its sources name no family); provctl trust set-family gives them one.
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
