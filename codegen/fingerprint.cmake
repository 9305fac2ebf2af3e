# Writes OUT: a header defining NABLA_CODEGEN_FINGERPRINT, a hash of the code
# generator's sources (FILES). The kernel cache key includes it, so objects
# cached by a different code generator are never loaded.
string(REPLACE "," ";" FILES "${FILES}")
set(text "")
set(old "")
foreach(f ${FILES})
  file(SHA256 ${f} h)
  string(APPEND text ${h})
endforeach()
string(SHA256 all "${text}")
string(SUBSTRING ${all} 0 16 short)
set(content "#define NABLA_CODEGEN_FINGERPRINT \"${short}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUT} "${content}")
endif()
