#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "optimi/device.hpp"

namespace optimi {

struct MemoryStats {
  int64_t live_bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device = Device::cpu());
void reset_peak_memory_stats(Device = Device::cpu());

// Per-device-type allocator; `device` names the device (its index) the memory is for. Storage
// counts what it holds through record_allocation, so memory_stats sees every backend the same way.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, Device device) = 0;
  virtual void deallocate(void* ptr, size_t bytes, Device device) = 0;
};
Allocator& allocator_for(Device);
// Replaces the allocator of a device type (a CUDA build starts with its caching allocator).
void register_allocator(DeviceType, Allocator* allocator);
// Live/peak bookkeeping shared by every allocator.
void record_allocation(Device, int64_t bytes);
void record_deallocation(Device, int64_t bytes);

// A reference-counted block of device memory.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

}  // namespace optimi
