#include "fuzzy/near_duplicate_index.hpp"

#include <absl/container/flat_hash_set.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <utility>

#include "common/errors.hpp"
#include "common/parallel_for.hpp"

namespace relay::fuzzy {
namespace {

// Batch items per thread below which more threads cost more than they save.
constexpr std::size_t kMinTextsPerThread = 256;

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
constexpr std::size_t kMaxEntries = kNone - 1;
constexpr std::size_t kMinTableSize = 64;

// splitmix64's finaliser: a fast 64-bit mixer with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 30U;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27U;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31U;
    return x;
}

// Where the compiler can make a copy for AVX2 chosen at load time (GCC's function clones on
// x86-64), the signing loop below gets one: its 64-bit multiply-adds run four lanes at a time
// instead of the baseline's two, with the same results.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RELAY_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define RELAY_AVX2_CLONE
#endif

// minima[i] = min over the shingles of permutation i's hash (see sign_shingles).
RELAY_AVX2_CLONE
void fold_minima(const std::uint64_t* shingles, std::size_t n, std::uint64_t seed,
                 const std::uint64_t* mul, const std::uint64_t* add, std::uint32_t* minima,
                 std::size_t num_perm) {
    for (std::size_t s = 0; s < n; ++s) {
        const std::uint64_t x = mix64(shingles[s] ^ seed);
        for (std::size_t i = 0; i < num_perm; ++i) {
            const auto h = static_cast<std::uint32_t>((mul[i] * x + add[i]) >> 32U);
            minima[i] = std::min(minima[i], h);
        }
    }
}

// A text's characters with their counts, by code point.
using Histogram = std::vector<std::pair<char32_t, std::uint32_t>>;

Histogram histogram(Text text) {
    Histogram out;
    std::array<std::uint32_t, 128> ascii{};
    std::vector<char32_t> other;
    for (const char32_t c : text) {
        if (c < 128) {
            ++ascii[c];
        } else {
            other.push_back(c);
        }
    }
    // Sized once (a chat message has a few dozen distinct characters): growing by doubling
    // cost more allocations than the counting.
    out.reserve(static_cast<std::size_t>(std::count_if(ascii.begin(), ascii.end(),
                                                       [](std::uint32_t n) { return n != 0; })) +
                other.size());
    for (std::size_t c = 0; c < ascii.size(); ++c) {
        if (ascii[c] != 0) {
            out.emplace_back(static_cast<char32_t>(c), ascii[c]);
        }
    }
    std::sort(other.begin(), other.end());
    for (std::size_t k = 0; k < other.size();) {
        std::size_t end = k;
        while (end < other.size() && other[end] == other[k]) {
            ++end;
        }
        out.emplace_back(other[k], static_cast<std::uint32_t>(end - k));
        k = end;
    }
    return out;
}

// The L1 distance of two histograms: a lower bound of the Indel distance of their texts.
std::size_t histogram_distance(const Histogram& a, const Histogram& b) {
    std::size_t distance = 0;
    std::size_t i = 0;
    std::size_t k = 0;
    while (i < a.size() && k < b.size()) {
        if (a[i].first == b[k].first) {
            distance +=
                a[i].second > b[k].second ? a[i].second - b[k].second : b[k].second - a[i].second;
            ++i;
            ++k;
        } else if (a[i].first < b[k].first) {
            distance += a[i++].second;
        } else {
            distance += b[k++].second;
        }
    }
    for (; i < a.size(); ++i) {
        distance += a[i].second;
    }
    for (; k < b.size(); ++k) {
        distance += b[k].second;
    }
    return distance;
}

// Whether ratio(a, b) may be >= cutoff, from lower bounds of their Indel distance: the length
// difference, then (only if that passes) `distance_bound()`. A bound clearly under the cutoff
// (by more than rounding) is a certain no; anything else is left to ratio() itself.
template <typename Bound>
bool ratio_may_reach(Text a, Text b, double cutoff, Bound distance_bound) {
    const std::size_t total = a.size() + b.size();
    if (total == 0) {
        return true;
    }
    const auto best = [&](std::size_t distance) {
        return 100.0 * static_cast<double>(total - distance) / static_cast<double>(total);
    };
    constexpr double kSlack = 1e-7;
    const std::size_t length_gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
    if (best(length_gap) < cutoff - kSlack) {
        return false;
    }
    return best(distance_bound()) >= cutoff - kSlack;
}

std::uint64_t pack_shingle(Text shingle) noexcept {
    std::uint64_t code = 0;
    for (const char32_t c : shingle) {
        // +1 so that a short (whole-text) shingle never equals a full one with leading U+0000.
        code = (code << 21U) | (static_cast<std::uint64_t>(c) + 1);
    }
    return code;
}

void append_utf8(std::string& out, char32_t c) {
    const auto cp = static_cast<std::uint32_t>(c);
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0U | (cp >> 6U)));
        out.push_back(static_cast<char>(0x80U | (cp & 0x3FU)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0U | (cp >> 12U)));
        out.push_back(static_cast<char>(0x80U | ((cp >> 6U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | (cp & 0x3FU)));
    } else {
        out.push_back(static_cast<char>(0xF0U | (cp >> 18U)));
        out.push_back(static_cast<char>(0x80U | ((cp >> 12U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | ((cp >> 6U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | (cp & 0x3FU)));
    }
}

std::string to_utf8(Text text) {
    // The ASCII prefix (most chat text is all ASCII) is written into a buffer sized at once,
    // without a push_back per character; the rest, if any, character by character.
    std::size_t ascii = 0;
    while (ascii < text.size() && static_cast<std::uint32_t>(text[ascii]) < 0x80U) {
        ++ascii;
    }
    std::string out(ascii, '\0');
    for (std::size_t i = 0; i < ascii; ++i) {
        out[i] = static_cast<char>(text[i]);
    }
    if (ascii < text.size()) {
        out.reserve(ascii + (text.size() - ascii) * 2);
        for (const char32_t c : text.substr(ascii)) {
            append_utf8(out, c);
        }
    }
    return out;
}

// Decodes what to_utf8 wrote (always well formed: it never comes from outside).
std::u32string from_utf8(std::string_view bytes) {
    std::u32string out;
    out.reserve(bytes.size());
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto lead = static_cast<unsigned char>(bytes[i]);
        std::uint32_t cp = 0;
        std::size_t extra = 0;
        if (lead < 0x80) {
            cp = lead;
        } else if (lead < 0xE0) {
            cp = lead & 0x1FU;
            extra = 1;
        } else if (lead < 0xF0) {
            cp = lead & 0x0FU;
            extra = 2;
        } else {
            cp = lead & 0x07U;
            extra = 3;
        }
        for (std::size_t k = 1; k <= extra; ++k) {
            cp = (cp << 6U) | (static_cast<unsigned char>(bytes[i + k]) & 0x3FU);
        }
        out.push_back(static_cast<char32_t>(cp));
        i += extra + 1;
    }
    return out;
}

}  // namespace

std::vector<std::uint64_t> shingle_set(Text text, std::size_t shingle_size) {
    std::vector<std::uint64_t> shingles;
    if (text.empty()) {
        return shingles;
    }
    const std::size_t k = std::min(shingle_size, text.size());
    shingles.reserve(text.size() - k + 1);
    for (std::size_t i = 0; i + k <= text.size(); ++i) {
        const Text shingle = text.substr(i, k);
        if (shingle_size <= 3) {
            shingles.push_back(pack_shingle(shingle));
        } else {
            shingles.push_back(XXH3_64bits(shingle.data(), shingle.size() * sizeof(char32_t)));
        }
    }
    std::sort(shingles.begin(), shingles.end());
    shingles.erase(std::unique(shingles.begin(), shingles.end()), shingles.end());
    return shingles;
}

double jaccard(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) {
    if (a.empty() && b.empty()) {
        return 1.0;
    }
    std::size_t shared = 0;
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i] < b[j]) {
            ++i;
        } else if (b[j] < a[i]) {
            ++j;
        } else {
            ++shared;
            ++i;
            ++j;
        }
    }
    return static_cast<double>(shared) / static_cast<double>(a.size() + b.size() - shared);
}

namespace {

// Whether jaccard(a, b) >= threshold (the same double comparison), stopping as soon as the
// shingles left cannot reach it: the similarity only grows with the shared count, so if even
// sharing all that is left falls short, so does the true one. Most LSH candidates of a first
// pass are settled this way before their merge ends.
bool jaccard_at_least(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b,
                      double threshold) {
    if (a.empty() && b.empty()) {
        return 1.0 >= threshold;
    }
    const std::size_t total = a.size() + b.size();
    auto reaches = [&](std::size_t shared) {
        return static_cast<double>(shared) / static_cast<double>(total - shared) >= threshold;
    };
    if (!reaches(std::min(a.size(), b.size()))) {
        return false;
    }
    constexpr std::size_t kCheckEvery = 32;
    std::size_t shared = 0;
    std::size_t i = 0;
    std::size_t j = 0;
    std::size_t steps = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i] < b[j]) {
            ++i;
        } else if (b[j] < a[i]) {
            ++j;
        } else {
            ++shared;
            ++i;
            ++j;
        }
        if (++steps % kCheckEvery == 0 && !reaches(shared + std::min(a.size() - i, b.size() - j))) {
            return false;
        }
    }
    return reaches(shared);
}

}  // namespace

double shingle_jaccard(Text a, Text b, std::size_t shingle_size) {
    if (shingle_size == 0) {
        throw InvalidArgument("shingle_size must be >= 1, got 0");
    }
    return jaccard(shingle_set(a, shingle_size), shingle_set(b, shingle_size));
}

double candidate_probability(double similarity, std::size_t bands, std::size_t rows) {
    if (!(similarity >= 0.0 && similarity <= 1.0)) {
        throw InvalidArgument("similarity must be in [0, 1], got " + format_number(similarity));
    }
    if (bands == 0 || rows == 0) {
        throw InvalidArgument("bands and rows must be >= 1");
    }
    const double band_hit = std::pow(similarity, static_cast<double>(rows));
    return 1.0 - std::pow(1.0 - band_hit, static_cast<double>(bands));
}

NearDuplicateIndex::NearDuplicateIndex(NearDuplicateOptions options) : options_(options), rows_(0) {
    if (options.shingle_size < 1 || options.shingle_size > 64) {
        throw InvalidArgument("shingle_size must be in [1, 64], got " +
                              std::to_string(options.shingle_size));
    }
    if (options.num_perm < 1 || options.num_perm > 1024) {
        throw InvalidArgument("num_perm must be in [1, 1024], got " +
                              std::to_string(options.num_perm));
    }
    if (options.bands < 1 || options.bands > options.num_perm ||
        options.num_perm % options.bands != 0) {
        throw InvalidArgument("bands must divide num_perm (" + std::to_string(options.num_perm) +
                              "), got " + std::to_string(options.bands));
    }
    rows_ = options.num_perm / options.bands;
    // Permutation i: h_i(x) = high 32 bits of (mul_i * x + add_i) mod 2^64, mul_i odd
    // (multiply-add-shift hashing of the mixed shingle code x).
    std::uint64_t state = options.seed;
    for (std::size_t i = 0; i < options.num_perm; ++i) {
        state += 0x9E3779B97F4A7C15ULL;
        perm_mul_.push_back(mix64(state) | 1U);
        state += 0x9E3779B97F4A7C15ULL;
        perm_add_.push_back(mix64(state));
    }
    table_size_ = kMinTableSize;
    heads_.assign(options.bands * table_size_, kNone);
}

NearDuplicateIndex::Signature NearDuplicateIndex::sign_shingles(
    std::span<const std::uint64_t> shingles) const {
    const std::size_t num_perm = options_.num_perm;
    std::vector<std::uint32_t> minima(num_perm, std::numeric_limits<std::uint32_t>::max());
    fold_minima(shingles.data(), shingles.size(), options_.seed, perm_mul_.data(), perm_add_.data(),
                minima.data(), num_perm);
    Signature signature;
    signature.band_keys.resize(options_.bands);
    for (std::size_t band = 0; band < options_.bands; ++band) {
        std::uint64_t h = mix64(options_.seed + band);
        for (std::size_t r = 0; r < rows_; ++r) {
            h = mix64(h ^ minima[band * rows_ + r]);
        }
        signature.band_keys[band] = static_cast<std::uint32_t>(h >> 32U);
    }
    return signature;
}

NearDuplicateIndex::Signature NearDuplicateIndex::sign(Text text) const {
    return sign_shingles(shingle_set(text, options_.shingle_size));
}

void NearDuplicateIndex::link(std::uint32_t id) {
    const std::size_t bands = options_.bands;
    for (std::size_t band = 0; band < bands; ++band) {
        const std::size_t at = std::size_t{id} * bands + band;
        std::uint32_t& head = heads_[band * table_size_ + slot(band_keys_[at])];
        next_[at] = head;
        head = id;
    }
}

void NearDuplicateIndex::unlink(std::uint32_t id) {
    const std::size_t bands = options_.bands;
    for (std::size_t band = 0; band < bands; ++band) {
        const std::size_t at = std::size_t{id} * bands + band;
        std::uint32_t* link_to = &heads_[band * table_size_ + slot(band_keys_[at])];
        while (*link_to != id) {
            link_to = &next_[std::size_t{*link_to} * bands + band];
        }
        *link_to = next_[at];
    }
}

void NearDuplicateIndex::grow_table_if_needed(std::size_t extra) {
    // Chains stay short: at most one entry per two slots on average.
    if (ids_.size() + extra <= table_size_ / 2) {
        return;
    }
    while (ids_.size() + extra > table_size_ / 2) {
        table_size_ *= 2;
    }
    heads_.assign(options_.bands * table_size_, kNone);
    for (std::size_t id = 0; id < entries_.size(); ++id) {
        if (entries_[id].live) {
            link(static_cast<std::uint32_t>(id));
        }
    }
}

void NearDuplicateIndex::insert_locked(std::string key, Text text, const Signature& signature) {
    const std::size_t bands = options_.bands;
    if (const auto found = ids_.find(key); found != ids_.end()) {
        const std::uint32_t id = found->second;
        unlink(id);
        std::copy(signature.band_keys.begin(), signature.band_keys.end(),
                  band_keys_.begin() + static_cast<std::ptrdiff_t>(std::size_t{id} * bands));
        entries_[id].text_utf8 = to_utf8(text);
        link(id);
        return;
    }
    if (ids_.size() >= kMaxEntries) {
        throw InvalidArgument("the index is full (" + std::to_string(kMaxEntries) + " entries)");
    }
    grow_table_if_needed();
    std::uint32_t id = 0;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
    } else {
        id = static_cast<std::uint32_t>(entries_.size());
        entries_.emplace_back();
        band_keys_.resize(band_keys_.size() + bands);
        next_.resize(next_.size() + bands);
    }
    std::copy(signature.band_keys.begin(), signature.band_keys.end(),
              band_keys_.begin() + static_cast<std::ptrdiff_t>(std::size_t{id} * bands));
    entries_[id] = Entry{key, to_utf8(text), true};
    ids_.emplace(std::move(key), id);
    link(id);
}

void NearDuplicateIndex::add(std::string key, Text text) {
    const Signature signature = sign(text);  // outside the lock: touches no shared state
    const std::unique_lock lock(mutex_);
    insert_locked(std::move(key), text, signature);
}

void NearDuplicateIndex::add_many(std::span<const std::string> keys, const TextBatch& texts,
                                  unsigned threads) {
    if (keys.size() != texts.size()) {
        throw InvalidArgument("add_many needs as many keys as texts, got " +
                              std::to_string(keys.size()) + " keys and " +
                              std::to_string(texts.size()) + " texts");
    }
    std::vector<Signature> signatures(keys.size());
    relay::parallel_for(keys.size(), threads, kMinTextsPerThread,
                        [&](std::size_t i) { signatures[i] = sign(texts[i]); });
    const std::unique_lock lock(mutex_);
    for (std::size_t i = 0; i < keys.size(); ++i) {
        insert_locked(keys[i], texts[i], signatures[i]);
    }
}

bool NearDuplicateIndex::remove(std::string_view key) {
    const std::unique_lock lock(mutex_);
    const auto found = ids_.find(absl::string_view(key.data(), key.size()));
    if (found == ids_.end()) {
        return false;
    }
    const std::uint32_t id = found->second;
    unlink(id);
    entries_[id] = Entry{};
    free_ids_.push_back(id);
    ids_.erase(found);
    return true;
}

void NearDuplicateIndex::clear() {
    const std::unique_lock lock(mutex_);
    entries_.clear();
    band_keys_.clear();
    next_.clear();
    free_ids_.clear();
    ids_.clear();
    table_size_ = kMinTableSize;
    heads_.assign(options_.bands * table_size_, kNone);
}

std::vector<NearDuplicate> NearDuplicateIndex::query(Text text, double threshold) const {
    if (!(threshold > 0.0 && threshold <= 1.0)) {
        throw InvalidArgument("threshold must be in (0, 1], got " + format_number(threshold));
    }
    const std::vector<std::uint64_t> shingles = shingle_set(text, options_.shingle_size);
    const Signature signature = sign_shingles(shingles);
    const std::size_t bands = options_.bands;
    std::vector<NearDuplicate> found;
    const std::shared_lock lock(mutex_);
    std::vector<std::uint32_t> candidates;
    for (std::size_t band = 0; band < bands; ++band) {
        const std::uint32_t band_key = signature.band_keys[band];
        for (std::uint32_t id = heads_[band * table_size_ + slot(band_key)]; id != kNone;
             id = next_[std::size_t{id} * bands + band]) {
            if (band_keys_[std::size_t{id} * bands + band] == band_key) {
                candidates.push_back(id);
            }
        }
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    for (const std::uint32_t id : candidates) {
        const Entry& entry = entries_[id];
        const double score =
            jaccard(shingles, shingle_set(from_utf8(entry.text_utf8), options_.shingle_size));
        if (score >= threshold) {
            found.push_back({entry.key, score});
        }
    }
    std::sort(found.begin(), found.end(), [](const NearDuplicate& x, const NearDuplicate& y) {
        return x.score != y.score ? x.score > y.score : x.key < y.key;
    });
    return found;
}

std::vector<std::vector<std::uint32_t>> NearDuplicateIndex::similar_earlier(
    const TextBatch& texts, double threshold) const {
    return find_earlier(texts, threshold, nullptr);
}

NearDuplicateIndex::EarlierBatch NearDuplicateIndex::similar_earlier_kept(TextBatch texts,
                                                                          double threshold) const {
    EarlierBatch batch;
    batch.similar = find_earlier(texts, threshold, &batch.signatures);
    batch.texts = std::move(texts);
    return batch;
}

void NearDuplicateIndex::add_from(const EarlierBatch& batch,
                                  std::span<const std::uint32_t> positions,
                                  std::span<const std::string> keys) {
    if (positions.size() != keys.size()) {
        throw InvalidArgument("add_from needs as many keys as positions, got " +
                              std::to_string(keys.size()) + " and " +
                              std::to_string(positions.size()));
    }
    for (const std::uint32_t i : positions) {
        if (i >= batch.texts.size()) {
            throw InvalidArgument("position " + std::to_string(i) + " is not in the batch of " +
                                  std::to_string(batch.texts.size()) + " texts");
        }
    }
    const std::unique_lock lock(mutex_);
    // Room for them all at once (a first window adds hundreds): the table is relinked once,
    // not at each doubling, and the arrays grow once.
    grow_table_if_needed(keys.size());
    const std::size_t entries = entries_.size() + keys.size();
    entries_.reserve(entries);
    band_keys_.reserve(entries * options_.bands);
    next_.reserve(entries * options_.bands);
    ids_.reserve(ids_.size() + keys.size());
    for (std::size_t k = 0; k < keys.size(); ++k) {
        insert_locked(keys[k], batch.texts[positions[k]], batch.signatures[positions[k]]);
    }
}

NearDuplicateIndex::EarlierBatch NearDuplicateIndex::collapse_earlier(
    TextBatch texts, std::vector<Signature> signatures, std::span<const std::uint8_t> pinned,
    double threshold, double ratio_cutoff) const {
    if (!(threshold > 0.0 && threshold <= 1.0)) {
        throw InvalidArgument("threshold must be in (0, 1], got " + format_number(threshold));
    }
    const std::size_t n = texts.size();
    if (n >= kNotCollapsed) {
        throw InvalidArgument("collapse_earlier takes at most 2^32 - 2 texts, got " +
                              std::to_string(n));
    }
    if (signatures.size() != n || pinned.size() != n) {
        throw InvalidArgument("collapse_earlier needs a signature slot and a pinned flag per text");
    }
    const std::size_t bands = options_.bands;
    for (std::size_t j = 0; j < n; ++j) {
        if (signatures[j].band_keys.empty()) {
            signatures[j] = sign(texts[j]);
        } else if (signatures[j].band_keys.size() != bands) {
            throw InvalidArgument("a signature has " +
                                  std::to_string(signatures[j].band_keys.size()) +
                                  " band keys; this index makes " + std::to_string(bands));
        }
    }
    EarlierBatch batch;
    batch.into.assign(n, kNotCollapsed);
    std::vector<std::uint8_t> live(n, 0);
    // Shingle sets, made only for texts of pairs that pass the ratio.
    std::vector<std::vector<std::uint64_t>> shingles(n);
    std::vector<std::uint8_t> shingled(n, 0);
    auto shingles_of = [&](std::uint32_t i) -> const std::vector<std::uint64_t>& {
        if (shingled[i] == 0) {
            shingles[i] = shingle_set(texts[i], options_.shingle_size);
            shingled[i] = 1;
        }
        return shingles[i];
    };
    // Per band: band key -> the last text seen with that key (position + 1), and per text and
    // band the text before it with the same key (0 ends the chain): all of them, as
    // similar_earlier() has them; liveness is checked per candidate. Chains instead of a vector
    // per key: a first window makes thousands of keys, and a vector each was most of the time.
    std::vector<absl::flat_hash_map<std::uint32_t, std::uint32_t>> heads(bands);
    for (auto& head : heads) {
        head.reserve(n);
    }
    std::vector<std::uint32_t> chain(n * bands, 0);
    // The live text equal to a text, if any (a text equal to a live one collapses it): a set of
    // positions, hashed by their texts' XXH3 made once per text and compared by text, so each
    // text is hashed once rather than at every lookup, insert and erase.
    std::vector<std::uint64_t> text_hashes(n);
    for (std::size_t j = 0; j < n; ++j) {
        text_hashes[j] = XXH3_64bits(texts[j].data(), texts[j].size() * sizeof(char32_t));
    }
    const auto by_text = [&](std::uint32_t i) { return text_hashes[i]; };
    const auto same_text = [&](std::uint32_t a, std::uint32_t b) { return texts[a] == texts[b]; };
    absl::flat_hash_set<std::uint32_t, decltype(by_text), decltype(same_text)> exact(n, by_text,
                                                                                     same_text);
    std::vector<std::uint32_t> candidates;
    // Per position, the last text whose candidates it was added to (j + 1): a text that shares
    // many bands with j is taken once, without sorting the bands' lists (which, for texts of a
    // small vocabulary, hold nearly every earlier text in each band).
    std::vector<std::uint32_t> taken_for(n, 0);
    // Character histograms, made only for texts of pairs that pass the length bound.
    std::vector<Histogram> histograms(n);
    std::vector<std::uint8_t> counted(n, 0);
    auto histogram_of = [&](std::uint32_t i) -> const Histogram& {
        if (counted[i] == 0) {
            histograms[i] = histogram(texts[i]);
            counted[i] = 1;
        }
        return histograms[i];
    };
    for (std::size_t j = 0; j < n; ++j) {
        const Text text = texts[j];
        const auto at = static_cast<std::uint32_t>(j);
        const std::uint32_t stamp = at + 1;
        candidates.clear();
        for (std::size_t band = 0; band < bands; ++band) {
            std::uint32_t& head = heads[band][signatures[j].band_keys[band]];
            for (std::uint32_t next = head; next != 0; next = chain[(next - 1) * bands + band]) {
                const std::uint32_t i = next - 1;
                if (taken_for[i] != stamp && live[i] != 0) {
                    taken_for[i] = stamp;
                    candidates.push_back(i);
                }
            }
            chain[j * bands + band] = head;
            head = stamp;
        }
        std::uint32_t same = kNotCollapsed;
        if (const auto found = exact.find(at); found != exact.end()) {
            same = *found;
        }
        for (const std::uint32_t i : candidates) {  // all live: gathered so, above
            if (i == same) {
                continue;
            }
            // ratio <= 100 * (1 - L1 / (|a| + |b|)) for the character histograms' L1 distance
            // (every insertion or deletion changes one count by one): most pairs of texts of a
            // small vocabulary fail this bound, at a fraction of an alignment's cost.
            if (!ratio_may_reach(text, texts[i], ratio_cutoff, [&] {
                    return histogram_distance(histogram_of(at), histogram_of(i));
                })) {
                continue;
            }
            if (ratio(text, texts[i], ratio_cutoff) >= ratio_cutoff &&
                jaccard_at_least(shingles_of(at), shingles_of(i), threshold)) {
                live[i] = 0;
                batch.into[i] = at;
                exact.erase(i);  // live texts are distinct: this entry is i's
            }
        }
        if (same != kNotCollapsed) {
            live[same] = 0;
            batch.into[same] = at;
            exact.erase(same);
        }
        if (pinned[j] == 0) {
            live[j] = 1;
            exact.insert(at);
        }
    }
    batch.signatures = std::move(signatures);
    batch.texts = std::move(texts);
    return batch;
}

std::vector<std::vector<std::uint32_t>> NearDuplicateIndex::find_earlier(
    const TextBatch& texts, double threshold, std::vector<Signature>* signatures) const {
    if (!(threshold > 0.0 && threshold <= 1.0)) {
        throw InvalidArgument("threshold must be in (0, 1], got " + format_number(threshold));
    }
    if (texts.size() > std::numeric_limits<std::uint32_t>::max()) {
        throw InvalidArgument("similar_earlier takes at most 2^32 - 1 texts, got " +
                              std::to_string(texts.size()));
    }
    const std::size_t bands = options_.bands;
    std::vector<std::vector<std::uint64_t>> shingles(texts.size());
    // Per band: band key -> positions of the texts seen so far with that key.
    std::vector<absl::flat_hash_map<std::uint32_t, std::vector<std::uint32_t>>> buckets(bands);
    std::vector<std::vector<std::uint32_t>> out(texts.size());
    std::vector<std::uint32_t> candidates;
    for (std::size_t j = 0; j < texts.size(); ++j) {
        shingles[j] = shingle_set(texts[j], options_.shingle_size);
        Signature signature = sign_shingles(shingles[j]);
        candidates.clear();
        for (std::size_t band = 0; band < bands; ++band) {
            auto& bucket = buckets[band][signature.band_keys[band]];
            candidates.insert(candidates.end(), bucket.begin(), bucket.end());
            bucket.push_back(static_cast<std::uint32_t>(j));
        }
        std::sort(candidates.begin(), candidates.end());
        candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
        for (const std::uint32_t i : candidates) {
            if (jaccard_at_least(shingles[j], shingles[i], threshold)) {
                out[j].push_back(i);
            }
        }
        if (signatures != nullptr) {
            signatures->push_back(std::move(signature));
        }
    }
    return out;
}

std::size_t NearDuplicateIndex::size() const {
    const std::shared_lock lock(mutex_);
    return ids_.size();
}

bool NearDuplicateIndex::contains(std::string_view key) const {
    const std::shared_lock lock(mutex_);
    return ids_.contains(absl::string_view(key.data(), key.size()));
}

}  // namespace relay::fuzzy
