{
  "targets": [
    {
      "target_name": "hpd_native",
      "sources": [
        "<!@(node -e \"const fs=require('fs'),p=require('path');const out=[];(function walk(d){for(const e of fs.readdirSync(d,{withFileTypes:true})){const f=p.join(d,e.name);if(e.isDirectory())walk(f);else if(/\\.cc$/.test(e.name))out.push(f)}})('native/src');console.log(out.sort().join(' '))\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=x86-64-v3", "-fno-exceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-rtti"],
      "libraries": ["-lucp", "-lucs", "-luct", "-lopenblas", "-lpthread"]
    }
  ]
}
