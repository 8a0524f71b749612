/* ndf SDK: the umbrella header.  Plugins include this and nothing else. */
#ifndef NDF_SDK_H
#define NDF_SDK_H

#include <ndf/version.h>
#include <ndf/status.h>
#include <ndf/params.h>
#include <ndf/context.h>
#include <ndf/exec.h>
#include <ndf/step.h>
#include <ndf/pattern.h>
#include <ndf/host.h>
#include <ndf/plugin.h>

#endif
