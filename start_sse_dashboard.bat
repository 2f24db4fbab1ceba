@echo off
rem sse-dashboard launcher: double-click it, or run it with arguments (e.g. --port 8090 --demo).
rem All logic lives in sse_server.py; this only finds Python and starts it.
setlocal
cd /d "%~dp0"
chcp 65001 >nul
set PYTHONUTF8=1
set "PY="
py -3 --version >nul 2>nul && set "PY=py -3"
if not defined PY python --version >nul 2>nul && set "PY=python"
if not defined PY (
  echo Python 3.9 or newer is needed, and neither "py -3" nor "python" was found.
  echo Install it from python.org ^(tick "Add python.exe to PATH"^), then double-click this file again.
  pause
  exit /b 1
)
%PY% sse_server.py --open %*
if errorlevel 1 (
  echo.
  echo The dashboard stopped with an error: see the message above.
  pause
)
endlocal
