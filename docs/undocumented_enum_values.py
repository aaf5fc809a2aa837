#!/usr/bin/env python3
"""Lists the public enum values without a comment, from Doxygen's XML output (docs/doxygen.sh runs it).

Doxygen 1.9 warns about an undocumented enum but not about its values, so `enum class Mode { min, max };`
passes WARN_IF_UNDOCUMENTED although a reader of the HTML sees two bare names. Prints one line per
value, in the format of Doxygen's own warnings ("<file>:<line>: warning: ..."), and exits 1 if any.

usage: docs/undocumented_enum_values.py XML_DIR
"""
import pathlib
import sys
import xml.etree.ElementTree as ET


def text(node):
    return "".join(node.itertext()).strip() if node is not None else ""


def main(xml_dir):
    found = set()
    for path in sorted(pathlib.Path(xml_dir).glob("*.xml")):
        if path.name == "index.xml":
            continue
        for enum in ET.parse(path).getroot().iter("memberdef"):
            if enum.get("kind") != "enum" or enum.get("prot") != "public":
                continue
            loc = enum.find("location")
            where = f"{loc.get('file')}:{loc.get('line')}" if loc is not None else "?"
            qualified = enum.findtext("qualifiedname") or enum.findtext("name")
            for value in enum.findall("enumvalue"):
                if text(value.find("briefdescription")) or text(value.find("detaileddescription")):
                    continue
                found.add(f"{where}: warning: enum value {qualified}::{value.findtext('name')} is not "
                          "documented (add a ///< comment after it)")
    for line in sorted(found):
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
